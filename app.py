"""ESM-NAS Studio: `streamlit run app.py`."""

import streamlit as st

st.set_page_config(page_title="ESM-NAS Studio", page_icon="🧬", layout="wide")

pages = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/data.py", title="Data", icon="📄"),
    st.Page("pages/search.py", title="Search", icon="🔎"),
    st.Page("pages/monitor.py", title="Monitor", icon="📈"),
    st.Page("pages/results.py", title="Results", icon="🏁"),
]
st.navigation(pages).run()
