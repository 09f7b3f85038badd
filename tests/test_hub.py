"""lyricgpt.hub and train.py --push-to-hub, end to end over real HTTP against tests/hub_server.py."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import CORPUS, ROOT
from hub_server import StandInHub, client_env, point_client_at, refused_url
from lyricgpt import ModelError, load_model
from lyricgpt.export import EXPORT_FILES
from lyricgpt.hub import HubError, push

SECRET = "hf_test_SECRET123"
MODEL_FILES = {"config.json", "model.safetensors", "tokenizer.json", "README.md", "loss.png", "examples.txt"}
TIMEOUT = 2.0
SLACK = 1.5  # less than TIMEOUT: a second wait of TIMEOUT (e.g. on the cache) would show
FAULTS = ["refused", "error", "hang"]
SAYS = {"refused": r"cannot reach the Hub at http://127\.0\.0\.1:\d+: .*refused",
        "error": r"http://127\.0\.0\.1:\d+ answered HTTP 500",
        "hang": r"the Hub at http://127\.0\.0\.1:\d+ did not answer within 2 s"}
BAD_IDS = ["user", "user/repo/extra", "user/re po", "user/repo--x", "-user/repo", "user/repo.git"]


@contextlib.contextmanager
def faulty(fault: str):
    """The URL of a Hub that refuses connections, answers 500, or never answers."""
    if fault == "refused":
        yield refused_url()
    else:
        with StandInHub(mode=fault) as hub:
            yield hub.url


@pytest.fixture
def hub():
    with StandInHub() as hub:
        yield hub


@pytest.fixture
def client(hub, monkeypatch, tmp_path):
    """This process's huggingface_hub, pointed at the stand-in, with an empty cache and no token."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    point_client_at(monkeypatch, hub.url, tmp_path / "hf")
    return hub


def logits(lm) -> torch.Tensor:
    ids = torch.arange(lm.context_length).remainder(lm.tokenizer.vocab_size)[None]
    with torch.no_grad():
        return lm.model(ids)[0]


def train(out: Path, data: Path, env: dict[str, str], *flags: str) -> subprocess.CompletedProcess:
    """A tiny training run of train.py, a few seconds long."""
    cmd = [sys.executable, str(ROOT / "train.py"), "--preset", "tiny", "--data", str(data), "--out", str(out),
           "--max-steps", "2", "--eval-interval", "2", "--batch-size", "4", "--n-embd", "32",
           "--context-length", "32", "--sample-chars", "20", *flags]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)


def child_env(url: str, home: Path, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **({"HF_TOKEN": token} if token else {}))
    return client_env(env, url, home)


@pytest.fixture(scope="module")
def small_corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "lyrics.txt"
    path.write_text(CORPUS.read_text(encoding="utf-8")[:40_000], encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pushed(tmp_path_factory, small_corpus):
    """One train.py run that pushes its model, privately, to a stand-in Hub that stays up."""
    tmp = tmp_path_factory.mktemp("pushed")
    with StandInHub() as hub:
        proc = train(tmp / "out", small_corpus, child_env(hub.url, tmp / "hf", SECRET),
                     "--push-to-hub", "user/repo", "--private")
        assert proc.returncode == 0, proc.stderr
        yield SimpleNamespace(hub=hub, out=tmp / "out", proc=proc, tmp=tmp)


# --- pushing with train.py, then pulling ---------------------------------------------------------

def test_push_uploads_the_model_folder_to_a_private_repo(pushed):
    hub, model = pushed.hub, pushed.out / "model"
    files = hub.files("user/repo")
    assert set(files) == MODEL_FILES
    assert all(files[name] == (model / name).read_bytes() for name in MODEL_FILES)
    assert hub.repos["user/repo"].private
    sha = hub.sha("user/repo")
    assert f"pushed to {hub.url}/user/repo/commit/{sha}" in pushed.proc.stdout


def test_pull_gives_the_same_model_as_the_local_folder(pushed, monkeypatch, tmp_path):
    point_client_at(monkeypatch, pushed.hub.url, tmp_path)
    monkeypatch.setenv("HF_TOKEN", SECRET)  # the repo is private
    sha = pushed.hub.sha("user/repo")
    local = logits(load_model(pushed.out / "model"))
    for revision in (None, sha):
        assert torch.equal(logits(load_model("user/repo", revision=revision)), local)
    assert (tmp_path / "hub" / "models--user--repo" / "snapshots" / sha / "model.safetensors").is_file()


def test_push_also_uploads_the_transformers_export(pushed, monkeypatch, tmp_path):
    """A second repo, USER/REPO-transformers, which transformers loads from the Hub as it is."""
    import transformers  # slow to import: only here
    hub, repo, export = pushed.hub, "user/repo-transformers", pushed.out / "transformers"
    files = hub.files(repo)
    assert set(files) == set(EXPORT_FILES)
    assert all(files[name] == (export / name).read_bytes() for name in EXPORT_FILES)
    assert hub.repos[repo].private
    assert f"pushed to {hub.url}/{repo}/commit/{hub.sha(repo)}" in pushed.proc.stdout
    point_client_at(monkeypatch, hub.url, tmp_path)
    monkeypatch.setenv("HF_TOKEN", SECRET)  # the repo is private
    model = transformers.AutoModelForCausalLM.from_pretrained(repo)
    ids = transformers.AutoTokenizer.from_pretrained(repo)("Down by the river\n", return_tensors="pt").input_ids
    lm = load_model(pushed.out / "model")
    assert ids[0].tolist() == lm.tokenizer.encode("Down by the river\n")
    with torch.no_grad():
        assert (model(ids).logits - lm.model(ids)[0]).abs().max() < 1e-4


def test_token_is_sent_as_bearer_and_never_leaks(pushed):
    writes = [r for r in pushed.hub.requests if r.method == "POST"]
    assert {r.headers.get("authorization") for r in writes} == {f"Bearer {SECRET}"}
    assert not any(SECRET in r.path for r in pushed.hub.requests)
    assert SECRET not in pushed.proc.stdout + pushed.proc.stderr
    for path in pushed.tmp.rglob("*"):  # run folder, model folder, checkpoints and the child's HF_HOME
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path
    assert not any(SECRET.encode() in data for data in pushed.hub.files("user/repo").values())


def test_push_is_public_unless_asked(client, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    url = push(tiny_model_dir, "user/public", timeout=10)
    assert url.startswith(f"{client.url}/user/public/commit/")
    assert not client.repos["user/public"].private
    assert set(client.files("user/public")) == {p.name for p in tiny_model_dir.iterdir()}


# --- refusing to start -----------------------------------------------------------------------------

@pytest.mark.parametrize("repo_id, token, says", [("user/repo", None, "no Hugging Face token: set HF_TOKEN"),
                                                  ("not a repo", SECRET, "'not a repo' is not a Hub repo id")])
def test_train_refuses_to_start_when_it_could_not_push(repo_id, token, says, hub, tmp_path, small_corpus):
    proc = train(tmp_path / "out", small_corpus, child_env(hub.url, tmp_path / "hf", token), "--push-to-hub", repo_id)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error:") and says in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "metrics.jsonl").exists()  # no training happened
    assert hub.requests == []


@pytest.mark.parametrize("repo_id", BAD_IDS)
def test_bad_repo_ids_are_refused_without_asking_the_hub(repo_id, client, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with pytest.raises(ModelError, match="neither a model folder nor a Hub repo id"):
        load_model(repo_id)
    with pytest.raises(HubError, match="is not a Hub repo id; expected USER/REPO"):
        push(tiny_model_dir, repo_id)
    assert client.requests == []


def test_missing_repo_or_revision_is_named(client, tiny_model_dir):
    client.add_model("user/repo", tiny_model_dir)
    with pytest.raises(HubError, match=r"downloading user/nope: .* has no such repo"):
        load_model("user/nope")
    with pytest.raises(HubError, match=r"downloading user/repo: .* has no such revision"):
        load_model("user/repo", revision="0" * 40)


def test_private_repo_is_pulled_with_the_token(client, tiny_model_dir, monkeypatch):
    client.add_model("user/secret", tiny_model_dir, private=True)
    with pytest.raises(HubError, match="private and your token cannot see it"):
        load_model("user/secret")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    assert torch.equal(logits(load_model("user/secret")), logits(load_model(tiny_model_dir)))
    assert client.requests[-1].headers["authorization"] == f"Bearer {SECRET}"


# --- a Hub that refuses, errs or hangs ---------------------------------------------------------------

@pytest.mark.parametrize("fault", FAULTS)
def test_pull_fails_in_bounded_time(fault, monkeypatch, tmp_path):
    with faulty(fault) as url:
        point_client_at(monkeypatch, url, tmp_path)
        start = time.perf_counter()
        with pytest.raises(HubError, match=SAYS[fault]):
            load_model("user/repo", timeout=TIMEOUT)
        assert time.perf_counter() - start < TIMEOUT + SLACK
    stuck = [t for t in threading.enumerate() if t.name.startswith("hub: ")]
    for thread in stuck:  # the stand-in let go of the held request, so the client's thread ends
        thread.join(10)
    assert not any(t.is_alive() for t in stuck)


@pytest.mark.parametrize("fault", FAULTS)
def test_push_fails_in_bounded_time_without_leaking_the_token(fault, monkeypatch, tmp_path, tiny_model_dir):
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with faulty(fault) as url:
        point_client_at(monkeypatch, url, tmp_path)
        start = time.perf_counter()
        with pytest.raises(HubError, match=SAYS[fault]) as error:
            push(tiny_model_dir, "user/repo", timeout=TIMEOUT)
        assert time.perf_counter() - start < TIMEOUT + SLACK
    assert SECRET not in str(error.value)


@pytest.mark.parametrize("fault", FAULTS)
def test_train_keeps_the_model_when_the_push_fails(fault, tmp_path, small_corpus):
    with faulty(fault) as url:
        proc = train(tmp_path / "out", small_corpus, child_env(url, tmp_path / "hf", SECRET),
                     "--push-to-hub", "user/repo", "--push-timeout", str(TIMEOUT))
    model = tmp_path / "out" / "model"
    assert proc.returncode == 3, proc.stderr
    assert "error: pushing to user/repo: " in proc.stderr
    assert f"push it later with: hf upload user/repo {model} ." in proc.stderr
    assert "Traceback" not in proc.stderr and SECRET not in proc.stdout + proc.stderr
    assert {p.name for p in model.iterdir()} == MODEL_FILES
    load_model(model)


@pytest.mark.parametrize("fault", FAULTS)
def test_cached_copy_is_used_when_the_hub_fails(fault, client, tiny_model_dir, monkeypatch, tmp_path):
    sha = client.add_model("user/repo", tiny_model_dir)
    expected = logits(load_model("user/repo"))  # fills the cache
    if fault == "refused":
        point_client_at(monkeypatch, refused_url(), tmp_path / "hf")
    else:
        client.mode = fault
    start = time.perf_counter()
    assert torch.equal(logits(load_model("user/repo", timeout=TIMEOUT)), expected)
    assert time.perf_counter() - start < TIMEOUT + SLACK

    asked = len(client.requests)  # a pinned commit that is cached needs no Hub at all
    assert torch.equal(logits(load_model("user/repo", revision=sha, timeout=TIMEOUT)), expected)
    assert len(client.requests) == asked
