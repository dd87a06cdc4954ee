"""panel_api."""
