"""Publishing an exported model directory to the Hugging Face Hub.

The token is used for the calls and never stored: not on disk, not in the study storage, not
in logs. ``HF_ENDPOINT`` and ``HF_TOKEN`` are read at call time, so a test (or a lab's own Hub
mirror) can point the client elsewhere.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from pathlib import Path

from nas_core.common.report import Report, load_report
from nas_core.publishing.card import CARD_REPORT, CURVES_IMAGE, render_card
from nas_core.publishing.config import PublishConfig, validate_repo_name
from nas_core.publishing.export import TRAINING_SEQUENCES


class PublishError(RuntimeError):
    """Publishing failed; the message says why and what to do. The local export is untouched."""


def suggested_repo_name(report: Report) -> str:
    """A Hub name that says what the model is: dataset, backbone and task, such as
    ``sumo128-esm2-8m-classifier`` (the namespace is the token's account unless given)."""
    backbone = report.best.backbone
    size = re.match(r"esm2_t\d+_(\w+)$", backbone)
    short = f"esm2-{size.group(1).lower()}" if size else (
        "demo" if "untrained" in backbone else "esm2")
    dataset = re.sub(r"[^A-Za-z0-9]+", "-", str(report.dataset.name)).strip("-").lower()
    kind = report.task.hub_kind
    return validate_repo_name(f"{dataset[:60].strip('-') or 'protein'}-{short}-{kind}")


def resolve_token(explicit: str | None = None) -> str:
    token = (explicit or os.environ.get("HF_TOKEN") or "").strip()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN, add it to the app's secrets, "
                           "or paste a token with write access.")
    return token


def _api(token: str, endpoint: str | None):
    from huggingface_hub import HfApi

    return HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token,
                 library_name="esm-nas-studio")


def check_token(token: str, endpoint: str | None = None) -> str:
    """Who-am-I: returns the user name; refuses unknown and read-only tokens."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        info = _api(token, endpoint).whoami()
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            raise PublishError("the Hub rejected this token (401): check that it is copied "
                               "completely and has not been revoked.") from None
        raise PublishError(f"could not check the token with the Hub: {_short(exc)}") from None
    except network_errors() as exc:
        raise PublishError(f"the Hub cannot be reached ({exc}). Check the network or "
                           "HF_ENDPOINT, then retry.") from None
    role = (info.get("auth", {}).get("accessToken") or {}).get("role")
    if role == "read":
        raise PublishError("this token can only read: create a token with write access "
                           "(Settings > Access Tokens) and retry.")
    return info["name"]


def transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP client's connection errors (huggingface_hub 2 ships httpx as httpx2)."""
    for name in ("httpx2", "httpx"):
        try:
            return (importlib.import_module(name).TransportError,)
        except (ImportError, AttributeError):
            continue
    return ()


def network_errors() -> tuple[type[BaseException], ...]:
    """What a failed Hub call raises: the OS's errors and the HTTP client's."""
    return (OSError, *transport_errors())


def _validate_card(api, token: str, card_text: str) -> None:
    """The Hub's own check of the card metadata (POST /api/validate-yaml), at ``api``'s
    endpoint (``ModelCard.validate`` would use the endpoint fixed at import time)."""
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    response = get_session().post(f"{api.endpoint}/api/validate-yaml",
                                  json={"repoType": "model", "content": card_text},
                                  headers=build_hf_headers(token=token))
    if response.status_code == 400:
        errors = response.json().get("errors", [])
        raise ValueError("; ".join(e.get("message", str(e)) for e in errors) or "invalid YAML")
    hf_raise_for_status(response)


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300]


def publish(model_dir: str | Path, config: PublishConfig, *, token: str | None = None,
            endpoint: str | None = None, progress: Callable[[str, float], None] | None = None
            ) -> str:
    """Check the token, create the repository, upload the model directory; return its URL.

    Nothing is retrained: a failed upload can simply be retried.
    """
    from huggingface_hub import CommitOperationAdd
    from huggingface_hub.errors import HfHubHTTPError

    model_dir = Path(model_dir)
    say = progress or (lambda message, fraction: None)
    if not (model_dir / "model.safetensors").is_file():
        raise PublishError(f"{model_dir} holds no exported model (model.safetensors).")
    token = resolve_token(token)
    say("Checking the token", 0.05)
    user = check_token(token, endpoint)
    repo_id = config.repo if "/" in config.repo else f"{user}/{config.repo}"
    api = _api(token, endpoint)
    report = load_report(model_dir / CARD_REPORT)
    card_text = (render_card(report, repo_id=repo_id, license=config.license,
                             has_curves=(model_dir / CURVES_IMAGE).is_file())
                 if report is not None else (model_dir / "README.md").read_text())
    files = sorted(p for p in model_dir.iterdir() if p.is_file() and p.name != "README.md"
                   and (config.include_training_sequences or p.name != TRAINING_SEQUENCES))
    operations = [CommitOperationAdd("README.md", card_text.encode())] + [
        CommitOperationAdd(p.name, str(p)) for p in files]
    try:
        say("Validating the model card", 0.15)
        _validate_card(api, token, card_text)
        say(f"Creating {repo_id}", 0.25)
        url = api.create_repo(repo_id, private=config.private, exist_ok=True,
                              repo_type="model")
        size = sum(p.stat().st_size for p in files)
        say(f"Uploading {len(operations)} files ({size / 1e6:.1f} MB)", 0.35)
        # the card is sent from memory: the local export stays exactly as it was
        api.create_commit(repo_id=repo_id, operations=operations, repo_type="model",
                          commit_message="Upload model found by ESM-NAS Studio")
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        raise PublishError(f"the Hub answered {status} while publishing {repo_id}: "
                           f"{_short(exc)}. Your local export is unchanged: retry in a moment "
                           "(nothing is retrained).") from None
    except ValueError as exc:  # the card's metadata was refused
        raise PublishError(f"the model card was refused: {_short(exc)}") from None
    except network_errors() as exc:
        raise PublishError(f"the connection to the Hub broke off ({exc}); your local export "
                           "is unchanged: retry.") from None
    say("Published", 1.0)
    return str(url).rstrip("/") if url else f"{api.endpoint}/{repo_id}"
