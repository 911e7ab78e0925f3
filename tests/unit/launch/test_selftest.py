"""`--self-test` (launch/selftest.py): what it says when the installation lacks something."""

import json

from resnext_gui.launch import selftest


def test_without_weights_the_self_test_gives_the_how_to_classify_gives(capsys):
    from resnext_gui.core.weights import no_weights_message

    assert selftest.main([]) == 1
    out, err = capsys.readouterr()
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["ok"] is False and summary["failed_at"] == "weights"
    assert err.strip() == f"resnext-gui self-test FAILED at weights: {no_weights_message()}"
    assert "resnext-gui weights fetch" in err and "--weights FILE" in err and "Looked in:" in err
