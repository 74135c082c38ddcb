"""Small, dependency-free report writers (markdown and SVG figures)."""
