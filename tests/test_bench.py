"""The pure parts of scripts/bench: byte counting parsers, ratios and the text report."""
from __future__ import annotations


import pytest

from conftest import load_script



@pytest.fixture(scope="module")
def bench():
    return load_script("bench")


NET_DEV = """\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:  931183    6453    0    0    0     0          0         0   931183    6453    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 27155189724 1018444    0    0    0     0          0         0 20838337  280858    0    0    0     0       0          0
 wlan0:1000 10 0 0 0 0 0 0 5 1 0 0 0 0 0 0
"""

NFT_COUNTER = """\
table inet torch-setup-bench-1a2b3c4d {
	counter rx {
		packets 10 bytes 15480
	}
}
"""


def test_net_dev_sums_received_bytes_of_all_interfaces_but_lo(bench):
    assert bench.net_dev_rx_bytes(NET_DEV) == 27155189724 + 1000  # no space after "wlan0:" either


def test_net_dev_of_a_host_with_only_lo_is_zero(bench):
    assert bench.net_dev_rx_bytes("\n".join(NET_DEV.splitlines()[:3])) == 0


def test_nft_counter_bytes(bench):
    assert bench.nft_counter_bytes(NFT_COUNTER) == 15480
    with pytest.raises(ValueError):
        bench.nft_counter_bytes("Error: No such file or directory")


TOOL_OUTPUT = """\
==> System packages: python3.13-dev g++ ca-certificates
[torch]    + torch==2.15.0
ok: uv (0.6 s, done at +0.7 s)
ok: venv (0.8 s, done at +1.5 s)
ok: torch (22.6 s)
[system-packages]   Setting up g++ (4:14.2.0-1) ...
ok: system-packages (30.8 s)
==> Verifying torch.compile in /root/.venvs/torch/bin/python (fresh Inductor cache)
torch.compile verified: torch 2.15.0+cu132 in /root/.venvs/torch/bin/python (cpu 32.91 s)
"""


def test_tool_steps(bench):
    assert bench.tool_steps(TOOL_OUTPUT) == {
        "step uv": 0.6, "step venv": 0.8, "step torch": 22.6, "step system-packages": 30.8,
        "verification: torch.compile": 32.91}
    assert bench.tool_steps("Nothing to do: every step is done already.") == {}
    assert [(n, round(a, 1), b) for n, a, b in bench.tool_timeline(TOOL_OUTPUT)] == [("uv", 0.1, 0.7),
                                                                                     ("venv", 0.7, 1.5)]


def test_ratio_and_formatting(bench):
    assert bench.ratio(45.0, 90.0) == 0.5
    assert bench.ratio(1.0, 0.0) == float("inf")
    assert bench.fmt_target(0.5, 0.5) == "0.50× (target ≤ 0.5×: met)"
    assert bench.fmt_target(0.51, 0.5) == "0.51× (target ≤ 0.5×: MISSED)"
    assert bench.fmt_target(1.25, 2.0, " s") == "1.25 s (target ≤ 2 s: met)"
    assert bench.fmt_bytes(3_104_000_000) == "3.10 GB"
    assert bench.fmt_bytes(15_480) == "15.48 kB"
    assert bench.fmt_bytes(12) == "12 B"
    assert bench.fmt_bytes(None) == "n/a"
    assert bench.fmt_s(0.0213) == "0.021 s"
    assert bench.fmt_s(3.0) == "3.00 s"
    assert bench.fmt_s(93.24) == "93.2 s"


def results(own_bytes=True):
    def path(seconds, nbytes, steps):
        return {"seconds": seconds, "steps": steps, "torch": "2.15.0", "bytes": nbytes if own_bytes else None,
                "host_bytes": nbytes + 1000}
    return {
        "date": "2026-11-29 20:00 UTC", "tarball": "trixie-minbase-python3.tar",
        "machine": {"os": "Debian GNU/Linux 12 (bookworm)", "kernel": "6.1.0", "nproc": 2, "cpu": "AMD EPYC",
                    "mem_gib": 23.4, "load_start": 1.5, "load_end": 2.0},
        "cold": {"order": "manual", "apt_update": False, "ratio": 0.45, "bytes_ratio": 0.99,
                 "manual": path(100.0, 3_100_000_000, {"apt-get install": 11.0, "pip install torch": 70.0,
                                                       "python3 -m venv": 3.0, "smoke torch.compile": 16.0}),
                 "expert": path(50.0, 3_070_000_000, {"apt & uv (side by side)": 34.0, "smoke torch.compile": 16.0}),
                 "tool": dict(path(45.0, 3_069_000_000, {"step torch": 22.6}),
                              timeline=[("system-packages", 0.0, 21.0), ("torch", 0.9, 23.5)]),
                 "floor_apt": 9.0, "floor_torch": 22.0, "floor": 38.0, "x_expert": 0.9, "x_floor": 45.0 / 38.0},
        "bytes_note": "a note",
        "rounds": [{"ready": {"bare": [0.02, 0.02, 0.03], "install_no_verify": [0.9, 1.0, 3.0],
                              "install": [15.0, 16.0, 17.0], "doctor": [1.0, 1.1, 1.2],
                              "detect": [0.25, 0.3, 0.35]},
                    "verify": {"smoke": [10.0, 11.0, 12.0], "verify": [13.0, 14.0, 15.0]}}],
        "total_s": 400.0,
    }


def test_report_shows_figures_ratios_targets_and_machine(bench):
    text = bench.report_text(results())
    assert "2 CPUs (AMD EPYC), 23.4 GiB RAM" in text and "kernel 6.1.0" in text and "2026-11-29 20:00 UTC" in text
    assert "manual first; apt-get update: no" in text
    assert "100.0 s" in text and "downloaded 3.10 GB" in text and "host interfaces: 3.10 GB" in text
    assert "pip install torch" in text and "70.0 s" in text
    assert "step torch" in text and "side by side" in text
    assert "time tool/manual: 0.45× (target ≤ 0.5×: met)" in text
    assert "expert: apt & uv side by side" in text and "tool/expert: 0.90× (target ≤ 1×: met)" in text
    assert "+  0.9 → + 23.5 s" in text
    assert "max + compile = 38.0 s" in text and "tool/floor: 1.18× (target ≤ 1.2×: met)" in text
    assert "800.0× bare (target ≤ 2 s: MISSED; the verification's record)" in text
    assert "bytes tool/manual: 0.99×" in text
    # medians, with the spread; detect 0.3 s / bare 0.02 s = 15× misses its target
    assert "1.00 s (min 0.900 s, max 3.00 s)" in text
    assert "50.0× bare (target ≤ 2 s: met)" in text
    assert "15.0× bare (target ≤ 10×: MISSED)" in text
    assert "1.27× (target ≤ 1.2×: MISSED)" in text  # verify 14 s / smoke 11 s
    assert "round 1 of 1" in text


def test_report_without_per_process_bytes(bench):
    text = bench.report_text(results(own_bytes=False))
    assert "downloaded n/a (host interfaces: 3.10 GB)" in text


def test_explain_part_reads_logs_as_pasted_and_reports_the_target(tmp_path):
    bench = load_script("bench")
    log = tmp_path / "x.log"
    log.write_text("# source: somewhere\n# evidence: E\n# host: windows\nline one\nline two")
    assert bench.pasted_log(log) == "line one\nline two"
    text = bench.explain_text({"reps": 2, "times": {"a.log": [0.2, 0.25], "b.log": [0.4, 0.5]}})
    assert "a.log" in text and "all: 0.325 s (target ≤ 0.3 s: MISSED)" in text
    for name in bench.EXPLAIN_LOGS:  # the logs it times exist and are from other platforms
        assert (bench.REPO / "tests" / "fixtures" / "logs" / name).is_file()


def test_the_big_log_is_realistic_lines_without_a_cause_then_the_real_one(tmp_path, bench):
    from torch_setup import explain as ex

    pieces = bench.big_log_text()
    text = "".join(next(pieces) for _ in range(40))  # ~1 MB: every line shape, warnings and tracebacks among them
    assert "Traceback (most recent call last)" in text and "UserWarning" in text and "█" in text
    assert [c.id for c in ex.diagnose(text)] == [ex.UNKNOWN]  # none of the filler names a cause
    tail = bench.pasted_log(bench.REPO / "tests" / "fixtures" / "logs" / bench.BIG_TAIL)
    path = tmp_path / "big.log"
    written = bench.write_big_log(path, 300_000, tail)
    data = path.read_text(encoding="utf-8")
    assert written == path.stat().st_size >= 300_000 and data.endswith(tail)
    assert ex.diagnose(data)[0].id == bench.BIG_TAIL.split("--")[0]


def test_big_log_report(bench):
    text = bench.explain_big_text({"100 MB of log lines + x.log": {"seconds": 8.0, "cpu_seconds": 6.0,
                                                                   "rss_mb": 64.0, "first_cause": "x"},
                                   "1 MB of random bytes": {"seconds": 12.0, "cpu_seconds": 1.0, "rss_mb": 250.0,
                                                            "first_cause": "unknown"}})
    assert "8.00 s (cpu 6.00 s), 64 MB RSS -> x" in text and "target ≤ 10 s: met; target ≤ 200 MB: met" in text
    assert "target ≤ 10 s: MISSED; target ≤ 200 MB: MISSED" in text


def fleet_results(own_bytes=True):
    def host(seconds, got, served=None, torch="2.15.0"):
        p = {"seconds": seconds, "steps": {"step torch": seconds - 20.0}, "timeline": [], "torch": torch,
             "bytes": got if own_bytes else None, "host_bytes": got + 1000}
        if served is not None:
            p["served_bytes"] = served
        return p
    return {"hosts": 3, "what": "the plan's torch", "own_bytes": own_bytes, "url": "http://127.0.0.1:4242/",
            "bundle": {"seconds": 20.0, "bundle_bytes": 3_100_000_000, "files": 70, "hosts": 3,
                       "downloaded_bytes": 3_100_000_000, "bytes": 3_160_000_000 if own_bytes else None,
                       "host_bytes": 3_160_001_000},
            "online": [host(60.0, 3_130_000_000), host(80.0, 3_130_000_000), host(70.0, 3_130_000_000)],
            "from_bundle": [host(50.0, 0, 3_100_000_000), host(55.0, 0, 3_100_000_000),
                            host(45.0, 2_000, 3_100_000_000)],
            "local": dict(host(40.0, 0), timeline=[("system-packages", 0.5, 30.5), ("torch", 0.9, 20.9)])}


def test_fleet_figures_sum_the_hosts_and_compare_one_bundle_with_online_installs(bench):
    f = bench.fleet_figures(fleet_results())
    assert f["online_total"] == {"seconds": 210.0, "bytes": 9_390_000_000, "parallel_s": 80.0}
    assert f["bundle_total"] == {"seconds": 170.0, "bytes": 3_160_002_000, "parallel_s": 75.0}
    assert f["bytes_ratio"] == pytest.approx(3_160_002_000 / 9_390_000_000)
    assert f["time_ratio"] == pytest.approx(170 / 210)
    assert f["local_x_online"] == pytest.approx(40 / 60)  # against host 1's cold online install


def test_fleet_figures_without_per_process_bytes_use_the_host_interfaces(bench):
    f = bench.fleet_figures(fleet_results(own_bytes=False))
    assert f["online_total"]["bytes"] == 9_390_003_000
    assert f["bundle_total"]["bytes"] == 3_160_001_000 + 5_000


def test_fleet_report_side_by_side(bench):
    text = bench.fleet_text(bench.fleet_figures(fleet_results()))
    assert "6. A fleet of 3 fresh Debian 13 hosts: ONE bundle" in text
    assert "torch: the plan's torch" in text
    assert "online, host 2: install --yes" in text and "80.0 s" in text
    assert "online fleet" in text and "from the internet 9.39 GB" in text
    assert "bundle 3.10 GB, 70 files, for 3 hosts" in text
    assert "bundle, host 3: install --from URL" in text and "from the internet 2.00 kB" in text
    assert "sent by the controller 3.10 GB" in text
    assert "bytes from the internet 0.34×, wall time 0.81×" in text
    assert "online 80.0 s, bundle + slowest install 75.0 s" in text
    assert "7. One fresh host" in text and "local bundle: install --from /bundle" in text
    assert "local bundle/online: 0.67× the time" in text
    assert "system-packages    +  0.5 → + 30.5 s  |###############" in text
    assert "torch 2.15.0" in text and "(torch 40.0 s; steps overlap)" in text
    assert "nftables counter" in text
    assert "any other traffic" in bench.fleet_text(bench.fleet_figures(fleet_results(own_bytes=False)))


def test_the_controllers_server_serves_the_folder_on_loopback_and_counts_what_it_sent(bench, tmp_path):
    import urllib.request

    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "a.whl").write_bytes(b"w" * 3_000_001)  # more than one 1 MiB chunk
    (tmp_path / "manifest.json").write_text("{}")
    served = bench.Served(tmp_path)
    try:
        assert served.url.startswith("http://127.0.0.1:")
        assert urllib.request.urlopen(served.url + "wheels/a.whl").read() == b"w" * 3_000_001
        assert urllib.request.urlopen(served.url + "manifest.json").read() == b"{}"
        assert served.bytes == 3_000_003
    finally:
        served.close()
