"""ESM-NAS Studio engine: data, ESM-2 backbones, architecture search. No Streamlit here."""

__version__ = "0.1.0"
