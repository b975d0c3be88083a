"""Notification copy: templates per locale, checked when the config loads; cut to each channel's limits."""
from __future__ import annotations

import unicodedata

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from config import ConfigError, load_config
from config.templates import BUILT_IN, read
from operators import copy

CONFIG = load_config()


# --- cutting to a limit ----------------------------------------------------------------------------

def test_short_copy_is_left_alone_and_long_copy_ends_with_an_ellipsis():
    assert copy.fit("Delivered", 9) == "Delivered"
    assert copy.fit("Your order is on its way", 12) == "Your order…"  # no space left before the ellipsis
    assert copy.fit("订单已由快递发出，请注意查收", 8) == "订单已由快递发…"


def test_a_cut_never_splits_a_combining_sequence_or_a_joined_emoji():
    assert copy.fit("cafe\u0301 au lait", 5) == "caf…"  # é as e + combining acute: never e without its accent
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"  # man ZWJ woman ZWJ girl
    assert copy.fit(f"ab{family} together", 5) == "ab…"
    assert copy.fit("thumbs \U0001F44D\U0001F3FD up", 9) == "thumbs…"  # a skin tone stays with its emoji


def belongs_to_the_previous(char: str) -> bool:
    return unicodedata.category(char) in ("Mn", "Me", "Mc") or 0x1F3FB <= ord(char) <= 0x1F3FF


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab 订单发货\u0301\u200d\U0001F468\U0001F3FD")), max_size=40),
       limit=st.integers(1, 30))
def test_fitted_copy_is_within_the_limit_a_prefix_and_cut_between_characters(text, limit):
    fitted = copy.fit(text, limit)
    assert len(fitted) <= limit
    if fitted == text:
        return
    assert fitted.endswith(copy.ELLIPSIS)
    kept = fitted[:-1]
    assert text.startswith(kept) and len(kept) <= limit - 1
    if kept:  # nothing dangles before the ellipsis, and no mark or skin tone is torn from its character
        assert kept[-1] != "\u200d" and not kept[-1].isspace()
        assert not belongs_to_the_previous(text[len(kept)])


# --- locales and templates ---------------------------------------------------------------------------

@pytest.mark.parametrize("wanted, used", [("en", "en"), ("zh-CN", "zh-CN"), ("zh-TW", "zh-CN"), ("en-GB", "en"),
                                          ("fr", "en"), ("pt-BR", "en")])
def test_a_locale_the_copy_lacks_falls_back_by_language_then_to_the_default(wanted, used):
    assert copy.locale_for(wanted, CONFIG) == used


def test_a_recommendation_names_the_first_item_and_its_price_in_each_locale():
    english = copy.render("recommendation_many", "en", "push", CONFIG, first="Brava frying pan",
                          first_price=copy.price(19.9, "en", CONFIG), count=3, others=2)
    assert (english.title, english.body) == ("Picked for you", "Brava frying pan ($19.90) and 2 more picked for you.")
    chinese = copy.render("recommendation_one", "zh-CN", "push", CONFIG, first="不锈钢煎锅",
                          first_price=copy.price(89, "zh-CN", CONFIG), count=1, others=0)
    assert (chinese.title, chinese.body) == ("为你精选", "不锈钢煎锅（¥89.00），为你精选。")
    no_price = copy.render("recommendation_one", "en", "push", CONFIG, first="Brava frying pan", first_price="",
                           count=1, others=0)
    assert no_price.body == "Brava frying pan - picked for you."  # no double space where the price was


def test_each_channel_cuts_to_its_own_limits_and_sms_has_no_title():
    long_title = "A" * 300
    pushed = copy.render("recommendation_one", "en", "push", CONFIG, first=long_title, first_price="", count=1,
                         others=0)
    assert len(pushed.body) == 150 and pushed.body.endswith("…") and pushed.title == "Picked for you"
    texted = copy.render("shipped", "en", "sms", CONFIG, order="o1", carrier="DHL", first="x", first_price="")
    assert texted.title == "" and texted.body == "Order o1 has shipped with DHL."


# --- refused when the config loads ------------------------------------------------------------------

def with_copy(tmp_path, change) -> str:
    data = read(BUILT_IN)
    change(data)
    path = tmp_path / "copy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return str(path)


def rejected(tmp_path, change) -> str:
    config = tmp_path / "job.yaml"
    config.write_text(f"content:\n  templates_file: {with_copy(tmp_path, change)}\n")
    with pytest.raises(ConfigError) as error:
        load_config(config)
    return str(error.value)


def test_an_unknown_placeholder_is_refused_with_its_template_and_locale(tmp_path):
    def typo(data):
        data["templates"]["shipped"]["zh-CN"]["body"] = "订单 {oder} 已发出"
    assert "content.templates: shipped [zh-CN] body has unknown placeholder(s) oder" in rejected(tmp_path, typo)


def test_a_missing_locale_or_template_is_refused(tmp_path):
    def no_chinese(data):
        del data["templates"]["refunded"]["zh-CN"]
    assert "template 'refunded' has no locale 'zh-CN'" in rejected(tmp_path, no_chinese)

    def no_template(data):
        del data["templates"]["delivered"]
    assert "template 'delivered' is missing" in rejected(tmp_path, no_template)

    def stray(data):
        data["templates"]["birthday"] = {"en": {"title": "Hi", "body": "Hi"}}
    assert "unknown template 'birthday'" in rejected(tmp_path, stray)


def test_unmatched_braces_and_bad_links_are_refused(tmp_path):
    def brace(data):
        data["templates"]["cancelled"]["en"]["title"] = "Order {order cancelled"
    assert "cancelled [en] title must be a text with {placeholders} in matched braces" in rejected(tmp_path, brace)
    with pytest.raises(ConfigError, match="content.deeplink has unknown placeholder"):
        load_config(overrides={"content": {"deeplink": "https://x/{sku}"}})
    with pytest.raises(ConfigError, match="directory.default_locale must be one of content.locales"):
        load_config(overrides={"directory": {"default_locale": "fr"}})


def test_an_edited_copy_file_next_to_the_config_is_what_the_job_sends(tmp_path):
    def friendlier(data):
        data["templates"]["shipped"]["en"]["title"] = "On its way!"
    (tmp_path / "sub").mkdir()
    copy_file = with_copy(tmp_path / "sub", friendlier)
    config_file = tmp_path / "sub" / "job.yaml"
    config_file.write_text("content:\n  templates_file: copy.yaml\n")  # relative to the config file
    assert copy_file.endswith("copy.yaml")
    config = load_config(config_file)
    assert copy.render("shipped", "en", "push", config, order="o", carrier="c", first="f",
                       first_price="").title == "On its way!"
    with pytest.raises(ConfigError, match="cannot be read"):
        load_config(overrides={"content": {"templates_file": str(tmp_path / "nowhere.yaml")}})
