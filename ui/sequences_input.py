"""Sequences to predict or rank, pasted or uploaded: the two tabs and their reading."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import streamlit as st

from nas_core.data.reading import UPLOAD_TYPES, RawTable, read_pasted, read_stream


@dataclass
class SequencesInput:
    pasted: str
    upload: Any  # Streamlit's UploadedFile, or None

    def read(self) -> RawTable:
        """The upload when there is one, else the pasted text; DataFileError (or ValueError)
        says what is wrong with it."""
        if self.upload is not None:
            self.upload.seek(0)  # a rerun may have read it already
            return read_stream(self.upload, self.upload.name, size=self.upload.size,
                               require_label=False)
        return read_pasted(self.pasted)


def sequences_input(key: str, what: str = "sequences", height: int = 160) -> SequencesInput:
    """A "Paste" tab and an "Upload a file" tab; widget keys ``{key}_text`` and
    ``{key}_upload``."""
    tab_paste, tab_file = st.tabs([f"Paste {what}", "Upload a file"])
    pasted = tab_paste.text_area("FASTA, or one sequence per line (optionally 'id,sequence')",
                                 key=f"{key}_text", height=height)
    upload = tab_file.file_uploader("FASTA, CSV, TSV or Excel with a sequence column",
                                    type=UPLOAD_TYPES, key=f"{key}_upload")
    return SequencesInput(pasted, upload)
