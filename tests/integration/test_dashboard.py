"""The dashboard in a real headless Chromium (Debian's chromium + chromium-driver, driven by selenium),
with live data from a running server and a real client. Screenshots go to test-artifacts/."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
import time

import pytest
import requests

from server.auth import hash_password
from tests.helpers import REPO, client_env, copy_audio, free_port, run_client

ARTIFACTS = REPO / "test-artifacts"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def browser():
    if not (CHROMIUM and DRIVER):
        pytest.skip("chromium and chromium-driver are not installed (scripts/install.sh --dev installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    drivers = []

    def open_as(user: str, password: str, width: int = 1280, height: int = 1000):
        options = Options()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
            options.add_argument(arg)
        options.add_argument(f"--window-size={width},{height}")
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        drivers.append(driver)
        # Basic auth on every request the page makes (its live refresh and its forms too).
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})
        return driver

    yield open_as
    for d in drivers:
        d.quit()


def text_of(driver, css: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, css).text


def test_the_dashboard_live_in_chromium(shared, whisper_cli, server_process, browser, tmp_path):
    from selenium.webdriver.common.by import By

    def WebDriverWait(driver, seconds):  # selenium's, minding that the page refreshes itself
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.support.ui import WebDriverWait as Wait

        return Wait(driver, seconds, ignored_exceptions=[StaleElementReferenceException])

    copy_audio(shared, tmp_path / "audio", {"talks/jfk.mp3": "jfk.mp3", "long/millbrook.mp3": "millbrook.mp3"})
    copy_audio(shared, tmp_path / "audio", {"bad.mp3": "corrupt-garbage.mp3"})
    users = tmp_path / "users"
    users.write_text(
        f"boss:{hash_password('boss-pw', 1000)}:admin\n"
        f"viewer:{hash_password('viewer-pw', 1000)}\n"
        f"laptop:{hash_password('laptop-pw', 1000)}\n"
    )
    srv = server_process(AUTH_USERS_FILE=str(users), MAX_ATTEMPTS=1, SPLIT_SECONDS=30, DEFAULT_LANGUAGE="en").start()
    env = client_env(
        tmp_path, srv.url, shared / "models/ggml-tiny.en.bin", "fedora-laptop",
        AUTH_ENABLED="true", USERNAME="laptop", PASSWORD="laptop-pw", DISPLAY_NAME="Fedora Fan",
    )  # fmt: skip
    assert run_client(env, "--until-idle").returncode == 0
    bad_id = next(t["id"] for t in srv_tasks(srv) if t["path"] == "bad.mp3")

    admin = browser("boss", "boss-pw")
    admin.get(srv.url + "/")
    assert "signed in as boss (admin)" in admin.page_source
    assert text_of(admin, "#files-done b") == "2" and text_of(admin, "#files-failed b") == "1"
    hosts = text_of(admin, "#hosts")
    assert "fedora-laptop" in hosts and "ggml-tiny.en.bin" in hosts and "idle" in hosts
    assert "bad.mp3" in text_of(admin, "#failed")
    assert "completed" in text_of(admin, "#events") and "stitched" in text_of(admin, "#events")
    volunteers = text_of(admin, "#volunteers table").splitlines()
    assert len(volunteers) == 2 and volunteers[1].startswith("1 Fedora Fan")  # the header, then the one
    assert volunteers[1].endswith("cpu")  # its hosts' backends
    stats = subprocess.run([sys.executable, "-m", "client.cli", "stats"], env=env, capture_output=True, text=True)
    assert stats.stdout.startswith("Fedora Fan: rank 1 of 1, 0.02 h of audio"), stats.stdout + stats.stderr
    ARTIFACTS.mkdir(exist_ok=True)
    admin.save_screenshot(str(ARTIFACTS / "dashboard.png"))
    assert (ARTIFACTS / "dashboard.png").stat().st_size > 10_000

    # The page follows the server without a reload: a file requeued elsewhere shows within a refresh.
    requests.post(f"{srv.url}/api/v1/admin/requeue", json={"ids": [bad_id]}, auth=("boss", "boss-pw"), timeout=10)
    WebDriverWait(admin, 20).until(lambda d: text_of(d, "#files-queued b") == "1")
    run_client(env, "--until-idle")  # fails it again
    admin.get(srv.url + "/")
    admin.find_element(By.ID, f"requeue-{bad_id}").click()
    WebDriverWait(admin, 10).until(lambda d: "requeued " + bad_id in d.page_source)
    assert next(t for t in srv_tasks(srv) if t["id"] == bad_id)["state"] == "queued"

    run_client(env, "--until-idle")  # failed again: a viewer sees it, without the admin's button
    admin.get(srv.url + "/")
    assert admin.find_elements(By.CSS_SELECTOR, "#failed button")
    viewer = browser("viewer", "viewer-pw", width=390, height=1400)  # a phone
    viewer.get(srv.url + "/")
    assert "signed in as viewer" in viewer.page_source and "(admin)" not in viewer.page_source
    assert "bad.mp3" in text_of(viewer, "#failed")
    assert viewer.find_elements(By.CSS_SELECTOR, "#failed button") == []
    xs = {viewer.find_element(By.ID, s).location["x"] for s in ("summary", "hosts", "long-files", "failed")}
    assert len(xs) == 1  # one column
    viewer.save_screenshot(str(ARTIFACTS / "dashboard-phone.png"))
    viewer.execute_script(  # what the button would send, sent anyway
        "const f = document.createElement('form'); f.method = 'post';"
        f"f.action = '/dashboard/requeue/{bad_id}'; document.body.appendChild(f); f.submit();"
    )
    WebDriverWait(viewer, 10).until(lambda d: "this needs the admin role" in d.page_source)

    # A page on another site posts the admin's button: Chromium sends the credentials along, and
    # says where the request comes from; the server refuses it and the task stays failed.
    page = tmp_path / "site" / "index.html"
    page.parent.mkdir()
    page.write_text(f'<form id="f" method="post" action="{srv.url}/dashboard/requeue/{bad_id}"></form>'
                    "<script>document.getElementById('f').submit()</script>")  # fmt: skip
    port = free_port()
    site = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "-b", "127.0.0.1"], cwd=page.parent,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        time.sleep(1)
        admin.get(f"http://localhost:{port}/index.html")  # localhost is another site than 127.0.0.1
        WebDriverWait(admin, 10).until(lambda d: "cross-site request refused" in d.page_source)
    finally:
        site.terminate()
    assert next(t for t in srv_tasks(srv) if t["id"] == bad_id)["state"] == "failed"


def srv_tasks(srv) -> list[dict]:
    return requests.get(f"{srv.url}/api/v1/tasks", auth=("viewer", "viewer-pw"), timeout=10).json()


def test_the_page_needs_credentials(server_process, tmp_path):
    users = tmp_path / "users"
    users.write_text(f"viewer:{hash_password('pw', 1000)}\n")
    srv = server_process(AUTH_USERS_FILE=str(users)).start()
    assert requests.get(srv.url + "/", timeout=10).status_code == 401
    assert requests.get(srv.url + "/metrics", timeout=10).status_code == 401
    assert requests.get(srv.url + "/", auth=("viewer", "pw"), timeout=10).status_code == 200
    refused = requests.post(srv.url + "/dashboard/requeue/abc", auth=("viewer", "pw"), timeout=10)
    assert refused.status_code == 403
