"""Server-wide singletons, created once per server process (not per browser session)."""

from __future__ import annotations

import streamlit as st

from nas_core.datastore import DatasetStore
from nas_core.workspace import workspace_root


@st.cache_resource
def dataset_store(root: str) -> DatasetStore:
    return DatasetStore(root)


def workspace() -> str:
    return str(workspace_root())
