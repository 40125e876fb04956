"""Streamlit glue: turns ``nas_core`` objects into ``st.*`` calls. No engine logic here."""
