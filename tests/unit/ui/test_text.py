"""How the window words things (ui/text.py): plurals, percentages, sentences, literal tooltips."""

from resnext_gui.ui.text import percent, plain_tooltip, plural, sentence


def test_plurals_percentages_and_sentences():
    assert [plural(n, "photo") for n in (0, 1, 2)] == ["0 photos", "1 photo", "2 photos"]
    assert plural(1, "photo is", "photos are") == "1 photo is" and plural(3, "photo is", "photos are") == "3 photos are"
    assert percent(0.5) == "50%" and percent(0.0123) == "1.2%"
    assert sentence("gone") == "gone." and sentence("gone?") == "gone?" and sentence("") == ""
    assert plain_tooltip("<b>x</b>\ny") == "<p style='white-space:pre-wrap'>&lt;b&gt;x&lt;/b&gt;<br>y</p>"
