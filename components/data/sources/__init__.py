"""Data source adapters: where raw data comes from. The use case lives here, not in the stages."""
