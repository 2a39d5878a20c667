"""`python -m bench --fast` writes results.json with exactly the published keys, and RESULTS.md, and the
committed results have that shape too. The fast run starts runtimes and the local Stripe: an end-to-end test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

EXPECTED_KEYS = {
    "ddb_calls": {"create", "get", "cancel_no_tx", "cancel_k_tx", "provider_event"},
    "sfn_transitions": {"per_24h_wait", "polling_1min_per_24h", "method"},
    "expiry_items_read": {"table_1x", "table_10x", "due"},
    "import_ratio": None,
    "overhead_ratio": None,
    "layer_mb": None,
    "runtime": {
        "create_p50_ms_empty",
        "create_p50_ms_10k",
        "create_p50_ratio_10k",
        "rss_mb_empty",
        "idle_mb",
        "rss_mb_10k",
        "memory_growth_mb_10k",
        "environments_empty",
        "environments_10k",
        "errors_5xx",
        "stop_seconds",
        "restart_seconds_10k",
    },
    "stripe": {"ddb_calls_cancel_k", "provider_wall_ratio_25_vs_1"},
    "webhooks": {"aws_calls_per_first_attempt", "deliveries_per_second", "first_attempt_p50_ms"},
    "capacity": {
        "max_writes_per_key_share_1_tenant",
        "max_messages_per_group_share",
        "fanout_groups_used",
        "max_writes_per_key_per_second_1_tenant",
        "max_reads_per_key_per_second_1_tenant",
        "max_messages_per_group_per_second",
    },
    "console": {"overview_calls_1k", "overview_calls_10k", "scans"},
    "adyen": {"ddb_calls_cancel_k", "ddb_calls_notification", "emulator_spec_violations"},
    "machine": None,
}


def _check_shape(results: dict[str, Any]) -> None:
    assert set(results) == set(EXPECTED_KEYS)
    for key, inner in EXPECTED_KEYS.items():
        if inner is not None:
            assert set(results[key]) == inner, key
    ddb = results["ddb_calls"]
    assert set(ddb["cancel_k_tx"]) == {"1", "5", "25"}
    assert all(isinstance(n, int) for n in ddb["cancel_k_tx"].values())
    assert all(isinstance(ddb[name], int) for name in ("create", "get", "cancel_no_tx", "provider_event"))
    sfn = results["sfn_transitions"]
    assert isinstance(sfn["per_24h_wait"], int)
    assert sfn["polling_1min_per_24h"] == 2880
    assert isinstance(sfn["method"], str) and sfn["method"]
    expiry = results["expiry_items_read"]
    assert all(isinstance(expiry[name], int) for name in ("table_1x", "table_10x"))
    assert expiry["due"] == 100
    assert isinstance(results["import_ratio"], float)
    assert isinstance(results["overhead_ratio"], float)
    assert results["layer_mb"] is None or isinstance(results["layer_mb"], float)
    assert isinstance(results["machine"], str) and results["machine"]
    stripe = results["stripe"]
    assert set(stripe["ddb_calls_cancel_k"]) == {"1", "5", "25"}
    assert isinstance(stripe["provider_wall_ratio_25_vs_1"], float)
    capacity = results["capacity"]
    assert isinstance(capacity["fanout_groups_used"], int)
    assert all(isinstance(value, int | float) for value in capacity.values())
    console = results["console"]
    assert all(
        isinstance(console[name], int) for name in ("overview_calls_1k", "overview_calls_10k", "scans")
    )
    adyen = results["adyen"]
    assert set(adyen["ddb_calls_cancel_k"]) == {"1", "5", "25"}
    assert all(isinstance(n, int) for n in adyen["ddb_calls_cancel_k"].values())
    assert isinstance(adyen["ddb_calls_notification"], int)
    assert isinstance(adyen["emulator_spec_violations"], int)
    runtime = results["runtime"]
    assert isinstance(runtime["errors_5xx"], int)
    assert all(isinstance(value, int | float) for value in runtime.values())


def test_fast_mode_writes_the_published_shape(tmp_path: Path) -> None:
    # Given the bench in its fast mode (tiny sizes)
    # When it runs
    ran = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "bench", "--fast", "--out", str(tmp_path)],
        cwd=ROOT,
        check=False,
        capture_output=True,
        text=True,
        timeout=900,  # a hang, not slowness: the bench measures speed, this test checks its shape
    )
    assert ran.returncode == 0, ran.stderr[-4000:]
    # Then results.json has exactly the published keys and RESULTS.md a row per measure
    _check_shape(json.loads((tmp_path / "results.json").read_text()))
    markdown = (tmp_path / "RESULTS.md").read_text()
    assert "| measure | method | goal | value | met |" in markdown
    assert "Machine:" in markdown


def test_committed_results_have_the_published_shape() -> None:
    _check_shape(json.loads((ROOT / "bench" / "results.json").read_text()))
