"""The ``vault`` command as an operator meets it: one-line errors that say what to fix, and
``vault run`` checking the request before it runs the hourly graph with progress."""

from __future__ import annotations

import pytest

from vault_pipeline import cli
from vault_pipeline.core.windows import parse_hour


@pytest.mark.parametrize("text, hour", [
    ("2026-01-01T05", "2026-01-01-05:00"), ("2026-01-01T05:00Z", "2026-01-01-05:00"),
    ("2026-01-01T05:59:59.5Z", "2026-01-01-05:00"), ("2026-01-01T07:00:00+02:00", "2026-01-01-05:00"),
    ("2026-01-01-05:00", "2026-01-01-05:00"),
])
def test_an_hour_is_accepted_in_the_forms_an_operator_types(text, hour):
    assert parse_hour(text).strftime("%Y-%m-%d-%H:00") == hour


@pytest.mark.parametrize("text", ["5am", "2026-13-01T00", "2026-01-01T05:00", ""])
def test_a_malformed_hour_says_which_forms_are_accepted(text):
    with pytest.raises(ValueError, match="2026-01-01T00, 2026-01-01T00:00Z"):
        parse_hour(text)


def test_vault_run_checks_the_provider_the_format_and_that_the_hour_has_ended(operator):
    code, out, err = operator("run", "--provider", "qq", "--hour", "2026-01-01T05")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "unknown provider(s) qq" in err and "configures qa" in err

    code, _, err = operator("run", "--provider", "qa", "--hour", "tomorrow")
    assert code == 2 and "is not an hour as 2026-01-01T00" in err

    code, _, err = operator("run", "--provider", "qa", "--hour", "2999-01-01T00")
    assert code == 2 and "has not ended yet" in err and "latest complete hour" in err

    code, _, err = operator("run", "--provider", "qa", "--hour", "2026-01-01T05", "--to", "2026-01-01T03")
    assert code == 2 and "before --hour" in err


def test_vault_run_runs_the_hourly_graph_and_shows_each_step(operator):
    code, out, err = operator("run", "--provider", "qa", "--hour", "2026-01-01T05Z", "--to", "2026-01-01T06")

    assert code == 0, out + err
    for step in ("raw_landing", "record_index", "normalised_records", "integrity_report", "ledger_entry", "golden_promotion"):
        assert f"2026-01-01-05:00|qa  {step}" in out
    assert "2 partitions run (0 failed)" in out and "Ledger: 4 new entries, 0 unchanged" in out
    assert "Traceback" not in out + err

    code, out, _ = operator("run", "--provider", "qa", "--hour", "2026-01-01T05")  # nothing new a second time
    assert code == 0 and ", new       0," in out and "Ledger: 0 new entries, 2 unchanged" in out


def test_a_config_error_is_one_or_two_lines_and_the_traceback_only_with_debug(operator):
    operator.config.write_text("providers:\n  qa: {type: simulator, kind: no_such_kind}\n")
    code, out, err = operator("run", "--provider", "qa", "--hour", "2026-01-01T05")
    assert code == 2 and out == ""
    assert err.startswith("vault: error: ") and len(err.strip().splitlines()) <= 3
    assert "provider 'qa': kind" in err and "Traceback" not in err and "--debug" in err

    with pytest.raises(Exception, match="provider 'qa': kind"):
        cli.main(["--debug", "run", "--provider", "qa", "--hour", "2026-01-01T05"])


def test_serve_help_shows_its_defaults(capsys):
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    help_text = capsys.readouterr().out
    assert "default: 127.0.0.1" in help_text and "default: 8080" in help_text


def test_the_demo_can_choose_providers_and_refuses_unknown_ones(operator):
    code, _, err = operator("demo", "--hours", "1", "--provider", "nope")
    assert code == 2 and "unknown provider(s) nope" in err


def test_vault_report_stores_a_report_and_names_the_option_to_fix(operator, tmp_path):
    hour = "2026-11-30T05"
    code, out, err = operator("run", "--provider", "qa", "--hour", hour)
    assert code == 0, out + err
    out_dir = tmp_path / "reports"
    code, out, err = operator("report", "--start", "2026-11-30T00:00:00Z", "--end", "2026-12-01T00:00:00Z",
                              "--format", "pdf", "--format", "csv", "--out", str(out_dir))
    assert code == 0, out + err
    report_id = out.split()[1]
    assert (out_dir / f"{report_id}.pdf").read_bytes().startswith(b"%PDF")
    assert {p.suffix for p in out_dir.iterdir()} == {".pdf", ".csv", ".json"} and "ledger  _vault #" in out

    for args, words in ((("--start", "2026-12-01T00:00:00Z", "--end", "2026-11-30T00:00:00Z"), "--end"),
                        (("--start", "last tuesday", "--end", "2026-12-01T00:00:00Z"), "--start 'last tuesday'"),
                        (("--preset", "daily", "--section", "vibes"), "--section: unknown section(s) vibes")):
        code, out, err = operator("report", *args)
        assert code == 2 and words in err and "Traceback" not in err, err
