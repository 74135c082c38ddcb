"""Model cards written from what a run actually knows."""

from .model_card import CARD_FACTS, read_card_facts, render_model_card, update_model_card

__all__ = ["CARD_FACTS", "read_card_facts", "render_model_card", "update_model_card"]
