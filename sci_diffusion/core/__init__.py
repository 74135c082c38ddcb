"""The domain-agnostic denoising core. Imports torch and nothing else of the field's stack.

Concepts: a *space* (what a sample is, how noise lives on it) with a *schedule* (time to
``(alpha, sigma)``); a *parameterization* (what the network predicts); an *objective*
(how it is trained); a *sampler* (how noise becomes data); *guidance* (how sampling is
steered). See docs/core.md.
"""

from .analytic import CategoricalJoint, GaussianMixture
from .capture import CapturedSampler, CaptureUnavailableError
from .categorical import CategoricalSpace, sample_categorical
from .ema import EMA
from .guidance import (
    ClassifierFreeGuidance,
    Inpainting,
    classifier_free,
    drop_condition,
    gradient_guidance,
    reconstruction_guidance,
    skip_non_finite_steps,
)
from .metrics import noise_floor, sliced_wasserstein
from .objectives import (
    DiffusionObjective,
    LossOutput,
    flow_matching_objective,
    loss_weight,
    sample_times,
)
from .parameterization import (
    PREDICTIONS,
    BoundDenoiser,
    Denoiser,
    edm_coefficients,
    expand_like,
    target,
    to_x0,
    x0_error_scale,
)
from .samplers import (
    SAMPLER_ARGUMENTS,
    SAMPLER_OPTIONS,
    SAMPLERS,
    SamplerOptionError,
    SamplerStep,
    function_evaluations,
    get_sampler,
    sample,
    sample_ddim,
    sample_ddpm,
    sample_dpm_solver_pp_2m,
    sample_euler,
    sample_euler_maruyama,
    sample_flow_euler,
    sample_flow_heun,
    sample_heun,
)
from .schedules import (
    SCHEDULES,
    CosineSchedule,
    KarrasSchedule,
    LinearSchedule,
    PolynomialSchedule,
    RectifiedFlowSchedule,
    Schedule,
    make_schedule,
)
from .spaces import (
    CoMFreeSpace,
    ComponentSpaceProtocol,
    EuclideanSpace,
    ProductSpace,
    Space,
    SpaceProtocol,
    masked_mean,
)

__all__ = [
    "EMA",
    "PREDICTIONS",
    "SAMPLERS",
    "SAMPLER_ARGUMENTS",
    "SAMPLER_OPTIONS",
    "SCHEDULES",
    "BoundDenoiser",
    "CaptureUnavailableError",
    "CapturedSampler",
    "CategoricalJoint",
    "CategoricalSpace",
    "ClassifierFreeGuidance",
    "CoMFreeSpace",
    "ComponentSpaceProtocol",
    "CosineSchedule",
    "Denoiser",
    "DiffusionObjective",
    "EuclideanSpace",
    "GaussianMixture",
    "Inpainting",
    "KarrasSchedule",
    "LinearSchedule",
    "LossOutput",
    "PolynomialSchedule",
    "ProductSpace",
    "RectifiedFlowSchedule",
    "SamplerOptionError",
    "SamplerStep",
    "Schedule",
    "Space",
    "SpaceProtocol",
    "classifier_free",
    "drop_condition",
    "edm_coefficients",
    "expand_like",
    "flow_matching_objective",
    "function_evaluations",
    "get_sampler",
    "gradient_guidance",
    "loss_weight",
    "make_schedule",
    "masked_mean",
    "noise_floor",
    "reconstruction_guidance",
    "sample",
    "sample_categorical",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpm_solver_pp_2m",
    "sample_euler",
    "sample_euler_maruyama",
    "sample_flow_euler",
    "sample_flow_heun",
    "sample_heun",
    "sample_times",
    "skip_non_finite_steps",
    "sliced_wasserstein",
    "target",
    "to_x0",
    "x0_error_scale",
]
