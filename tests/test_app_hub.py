"""app.py and its model source, with a stand-in Hub: a Hub repo is served when the Hub answers; when
it stays silent, refuses the connection, or the model folder is broken, the app still starts in
seconds on the bundled model and says why (the page says it in short, the log in full)."""

from __future__ import annotations

import shutil

import httpx
import pytest
from gradio_client import Client

from hub_server import StandInHub, client_env, refused_url
from live_app import running_app
from lyricgpt.data import SONG_BREAK
from lyricgpt.form import FormSpec
from lyricgpt.serving import folder_name

STARTUP_BOUND_S = 25  # app start (imports, model, server) plus the app's 5 s Hub bound, on a busy CI box
FELL_BACK = "Fell back to the bundled model because"


def page_config(app) -> str:
    return httpx.get(f"{app.url}/config", timeout=10).text


def test_a_model_on_the_hub_is_served(subprocess_env, tiny_model_dir, tiny_lm, tmp_path):
    with StandInHub() as hub:
        hub.add_model("singer/tiny", tiny_model_dir)
        env = client_env(subprocess_env, hub.url, tmp_path)
        with running_app(env, LYRICGPT_MODEL="singer/tiny") as app:
            assert "from Hub repo singer/tiny" in page_config(app) and FELL_BACK not in page_config(app)
            lyric = Client(app.url, verbose=False).predict("la la", 0, 30, api_name="/generate")[0]
    written = "".join(tiny_lm.stream("la la", 30, 0.0, end_with_song=True, form=FormSpec()))  # as the page writes
    assert lyric == "la la" + written.removesuffix(SONG_BREAK)
    assert any("/resolve/" in r.path and "model.safetensors" in r.path for r in hub.requests)


@pytest.mark.parametrize("fault", ["hang", "refused"])
def test_a_hub_that_does_not_answer_delays_the_start_by_seconds_only(subprocess_env, tmp_path, fault):
    with StandInHub(mode="hang") as hub:
        url = hub.url if fault == "hang" else refused_url()
        with running_app(client_env(subprocess_env, url, tmp_path), LYRICGPT_MODEL="singer/tiny",
                         LYRICGPT_REVISION="v1") as app:
            assert app.startup_s < STARTUP_BOUND_S
            config = page_config(app)
            assert f"{FELL_BACK} Hub repo singer/tiny at revision v1 could not be loaded" in config
            assert ("did not answer within 5 s" in config) == (fault == "hang")
            assert len(Client(app.url, verbose=False).predict("", 0.8, 10, api_name="/generate")[0]) >= 10
            assert "could not load the model from singer/tiny" in app.log()


def test_a_broken_model_folder_falls_back_with_the_reason_in_the_log(subprocess_env, tiny_model_dir, tmp_path):
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    weights = bytearray((broken / "model.safetensors").read_bytes())
    weights[len(weights) // 2:] = b"\0" * (len(weights) - len(weights) // 2)  # a half-written download
    (broken / "model.safetensors").write_bytes(bytes(weights))
    # The first of two voices: the bundled model sings in its place, and the other voice still sings.
    with running_app(subprocess_env, LYRICGPT_MODEL=f"{broken},{tiny_model_dir}") as app:
        config = page_config(app)
        assert FELL_BACK in config and "broken-model could not be loaded: model.safetensors" in config
        assert str(tmp_path) not in config
        client = Client(app.url, verbose=False)
        params = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/generate"]["parameters"]
        voice = next(p for p in params if p["parameter_name"] == "voice")
        assert voice["parameter_default"] == "Folk songs and ballads"  # the bundled model's card names it
        assert len(client.predict("", 0.8, 10, voice=f"folder {folder_name(str(tiny_model_dir))}",
                                  api_name="/generate")[0]) >= 10  # then to the line's end
        log = app.log()
        assert f"could not load the model from {broken} (WeightsError: model.safetensors" in log
