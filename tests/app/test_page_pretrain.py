"""AppTest of 'Teach a backbone': a stored dataset's sequences teach the demo backbone in a
background job, whose curve the Monitor shows and whose backbone the Search page offers."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from nas_core.search.presets import DEMO_BACKBONE, demo_backbone
from tests.helpers import ROOT, shown, store_example

BROWSER = "d" * 32


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    at.session_state["browser_id"] = BROWSER
    at.session_state["user_name"] = "dana"
    at.run()
    at.switch_page(f"app_pages/{name}.py").run()
    assert not at.exception, at.exception
    return at


def test_a_dataset_teaches_a_backbone_that_search_then_offers(workspace):
    from ui.engine import job_manager

    stored = store_example(as_name="amp.csv")
    demo = str(demo_backbone(workspace))
    at = page("pretrain")
    assert "Teach a backbone your proteins" in at.title[0].value
    at.selectbox(key="pretrain_base").set_value(demo).run()
    assert at.selectbox(key="pretrain_dataset").value.id == stored.id
    assert any("tokens per second" in c.value for c in at.caption)  # the measured estimate
    at.number_input(key="pretrain_tokens").set_value(20_000)
    at.text_input(key=f"pretrain_name_{demo}").set_value("demo-amp")
    at.button(key="pretrain_start").click().run()
    assert not at.exception, at.exception
    assert any("teaches 'demo-amp'" in shown(s.value) for s in at.success)
    manager = job_manager(str(workspace))
    job = next(j for j in manager.jobs() if j.kind == "pretrain")
    assert manager.wait(job.id, timeout=300).state == "finished", manager.get(job.id).error
    assert job.pretrain_request.dataset_id == stored.id
    made = workspace / "backbones" / "demo-amp"
    assert (made / "config.json").is_file() and (made / "README.md").is_file()

    monitor = page("monitor")  # the job's curve: training and held-out loss
    assert not monitor.exception and len(monitor.get("vega_lite_chart")) >= 1

    again = page("pretrain")  # listed with what it learnt
    table = next(d.value for d in again.dataframe if "held-out perplexity" in d.value.columns)
    assert table["backbone"].tolist() == ["esm2-proteomes-0.8M", "demo-amp"]  # shipped first
    assert table.set_index("backbone").loc["demo-amp", "started from"] == DEMO_BACKBONE

    search = page("search")
    options = search.multiselect(key="search_backbones").options
    label = next(o for o in options if "demo-amp" in o)
    assert "pretrained here from untrained-demo" in label
    search.multiselect(key="search_backbones").set_value([str(made)]).run()
    assert not search.exception, search.exception
