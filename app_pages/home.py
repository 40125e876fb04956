import streamlit as st

st.title("ESM-NAS Studio")
st.markdown(
    """
Find the best protein language model for **your** measurements, without writing code.

1. **Data** — drop in a spreadsheet (CSV, TSV, Excel) or a FASTA file with your sequences and the
   label you measured (enzyme or not, localisation, stability, fluorescence...). The app checks
   every row, tells you exactly what to fix, and sets aside a *held-out test set* that the search
   never sees, so the final score is honest.
2. **Search** — the app tries many variants of the ESM-2 protein language model: bigger or
   smaller, fewer layers, frozen or fine-tuned, different prediction heads. It keeps the ones
   that predict your validation sequences best.
3. **Results** — the best model, and an ensemble of the best few, are scored once on the
   held-out test set, compared with a simple reference model, and saved so you can predict new
   sequences or share them.
4. **Test these next** — upload the sequences you could make; the ensemble ranks them and
   picks a varied batch to measure. Add the measurements back and the search runs again on the
   larger dataset.
"""
)
st.page_link("app_pages/data.py", label="Start with your data", icon=":material/table_view:")
