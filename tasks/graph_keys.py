"""The component names of a molecular graph state (shared by the graph and 3D tasks and the
property predictor): categorical node components and the symmetric edge component."""

NODE_KEYS = ("atoms", "charges")
EDGE_KEY = "bonds"
