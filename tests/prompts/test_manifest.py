"""prompts/manifest: parsing, validation errors with line numbers, the required ids, and
the text a prompt says with its values read out."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr.errors import ArspayError, ConfigError
from ivr.gateways.declines import PROMPT_TEXT, DeclineReason, Stage, all_prompt_ids, prompt_id
from ivr.prompts import ManifestError, PromptBook, PromptError
from ivr.prompts.manifest import Slot, Static, load_manifest, parse_manifest
from ivr.settings import PromptSettings

MANIFEST = Path(__file__).resolve().parents[2] / "prompts" / "manifest"

REQUIRED = [
    "common.wait", "common.goodbye", "common.agent", "auth.rejected", "err.invalid_choice",
    "err.invalid_number", "err.invalid_expiry", "err.invalid_birth", "err.invalid_password",
    "err.invalid_months", "err.timeout", "err.too_many", "err.system", "reg.greeting",
    "reg.consent", "reg.declined", "reg.done", "reg.retry", "card.number", "card.expiry",
    "card.birth", "card.password", "card.confirm", "pay.greeting", "pay.details",
    "pay.card_choice", "pay.save_card", "pay.installment", "pay.interest_free",
    "pay.installment_months", "pay.confirm.lump_sum", "pay.confirm.installment", "pay.done",
    "pay.declined", "pay.retry", "pay.pending", "pay.verify_birth", "pay.verify_locked",
    "err.verify_mismatch", "auth.completed", "auth.cancelled", "auth.busy", "auth.limit",
    "auth.withheld", "pay.enter_or_decline", "pay.retry_lump_sum",
]  # fmt: skip

SAMPLE: dict[str, object] = {
    "merchant": "행복치과", "product": "임플란트", "issuer": "신한", "amount": 53000,
    "months": 3, "min_months": 2, "max_months": 6, "last4": "1234", "approval": "30012345",
}  # fmt: skip


@pytest.fixture(scope="module")
def book(tmp_path_factory: pytest.TempPathFactory) -> PromptBook:
    tmp = tmp_path_factory.mktemp("sounds")
    return PromptBook.from_settings(
        PromptSettings(manifest=MANIFEST, recorded_dir=tmp / "rec", sounds_dir=tmp / "snd")
    )


def test_every_required_prompt_is_in_the_manifest(book: PromptBook) -> None:
    assert set(REQUIRED) <= book.ids


@pytest.mark.parametrize("stage", list(Stage))
def test_every_decline_reason_has_a_prompt_per_stage(book: PromptBook, stage: Stage) -> None:
    for reason in DeclineReason:
        pid = f"{stage.value}.failed.{reason.value}"
        assert pid == prompt_id(reason, stage)
        assert book.has(pid), pid
        assert book.slots(pid) == frozenset()
        assert book.template(pid) == PROMPT_TEXT[reason], pid  # one canonical text
    assert all_prompt_ids() <= book.ids


def test_the_spec_texts_are_kept_exactly(book: PromptBook) -> None:
    assert book.template("pay.details") == "{product} 결제 금액은 {amount}원입니다."
    assert book.template("card.number") == (
        "카드 번호 열여섯 자리를 누르신 후 우물 정자를 눌러 주세요."
    )
    assert book.template("reg.failed.wrong_password") == "카드 비밀번호가 일치하지 않습니다."
    assert book.template("pay.failed.limit_exceeded") == "잔액이 부족하거나 한도가 초과되었습니다."
    assert book.template("pay.failed.expired_card") == "유효기간이 지난 카드입니다."
    assert book.template("pay.verify_birth") == (  # docs/product.md §4.2, the knowledge factor
        "본인 확인을 위해 생년월일 여섯 자리를 눌러 주세요. "
        "법인카드는 사업자등록번호 열 자리를 누르신 후 우물 정자를 눌러 주세요."
    )


def test_rejections_say_why_in_the_spec_words(book: PromptBook) -> None:
    """docs/product.md §4.1 (issue #28): one prompt per reason, with the spec's words
    and what to do; {merchant} where the payer is told whom to ask."""
    words = {
        "auth.rejected": ("등록되지 않은 번호이거나 유효 시간이 지났습니다.", "다시 걸어 주세요"),
        "auth.completed": ("이미 처리된 요청입니다.", "{merchant}에 문의해 주세요"),
        "auth.cancelled": ("취소된 요청입니다.", "{merchant}에 문의해 주세요"),
        "auth.busy": ("이 요청으로 이미 통화 중입니다.", "다시 걸어 주세요"),
        "auth.limit": ("통화 횟수를 초과했습니다.", "{merchant}에 문의해 주세요"),
        "auth.withheld": ("발신번호 표시를 켜고 다시 걸어 주세요.",),
    }
    for pid, needles in words.items():
        assert all(n in book.template(pid) for n in needles), pid
    assert book.template("pay.enter_or_decline") == (  # docs/product.md §4.2
        "카드 정보를 입력하시려면 1번, 결제를 원하지 않으시면 3번을 눌러 주세요."
    )
    assert "일시불" in book.template("pay.retry_lump_sum")


def test_every_prompt_has_text_with_sample_values(book: PromptBook) -> None:
    for pid in book.ids:
        values = {name: SAMPLE[name] for name in book.slots(pid)}
        text = book.text(pid, **values)
        assert text.strip()
        assert "{" not in text, pid
        assert "}" not in text, pid


@pytest.mark.parametrize(
    ("prompt_id", "values", "text"),
    [
        ("pay.details", {"product": "임플란트", "amount": 53000},
         "임플란트 결제 금액은 오만 삼천원입니다."),
        ("pay.details", {"product": "  정기   관리 ", "amount": 110000},
         "정기 관리 결제 금액은 십일만원입니다."),
        ("pay.confirm.installment", {"amount": 1000000, "months": 3},
         "백만원을 삼개월 할부로 결제합니다. 맞으면 1번을 눌러 주세요."),
        ("pay.confirm.lump_sum", {"amount": 0},
         "영원을 일시불로 결제합니다. 맞으면 1번을 눌러 주세요."),
        ("pay.interest_free", {"issuer": "신한", "min_months": 2, "max_months": 12},
         "신한 카드는 이개월부터 십이개월까지 무이자 할부가 됩니다."),
        ("card.confirm", {"last4": "1004"},
         "입력하신 카드는 끝자리 일 공 공 사입니다. "
         "맞으면 1번, 다시 입력하시려면 2번을 눌러 주세요."),
        ("pay.done", {"approval": "30012345"},
         "결제가 완료되었습니다. 승인번호는 삼 공 공 일 이 삼 사 오입니다. 감사합니다."),
        ("common.wait", {}, "잠시만 기다려 주세요."),
    ],
)  # fmt: skip
def test_text_reads_values_out(
    book: PromptBook, prompt_id: str, values: dict[str, object], text: str
) -> None:
    assert book.text(prompt_id, **values) == text


@pytest.mark.parametrize(
    ("prompt_id", "values", "message"),
    [
        ("pay.nothing", {}, "unknown prompt id 'pay.nothing'"),
        ("pay.details", {"product": "임플란트"}, "missing value.s. for amount"),
        ("common.wait", {"amount": 5}, "unexpected value.s. amount"),
        ("pay.details", {"product": "임플란트", "amount": "53000"}, r"\{amount\} must be an int"),
        ("pay.details", {"product": "임플란트", "amount": -5}, r"\{amount\} must be an int"),
        ("pay.details", {"product": "임플란트", "amount": True}, r"\{amount\} must be an int"),
        ("pay.details", {"product": "", "amount": 1}, r"\{product\} must be text"),
        ("pay.details", {"product": "가" * 101, "amount": 1}, r"\{product\} must be text"),
        ("pay.details", {"product": 77, "amount": 1}, r"\{product\} must be text"),
        ("card.confirm", {"last4": 1234}, r"\{last4\} must be a string of digits"),
        ("card.confirm", {"last4": "12-4"}, r"\{last4\} must be a string of digits"),
    ],
)
def test_bad_values_are_prompt_errors_without_the_value(
    book: PromptBook, prompt_id: str, values: dict[str, object], message: str
) -> None:
    with pytest.raises(PromptError, match=message) as info:
        book.text(prompt_id, **values)
    for value in values.values():
        if str(value) not in ("", "1", "5", "True") and str(value) not in prompt_id:
            assert str(value) not in info.value.message


def test_parsing_splits_static_pieces_and_placeholders() -> None:
    manifest = parse_manifest(
        "# comment\n\n  a.b = {merchant}의 {product} 요금  \nc = x = y\nd = {amount} {months}.\n"
    )
    a = manifest.prompts["a.b"]
    assert a.text == "{merchant}의 {product} 요금"
    assert a.parts == (Slot("merchant"), Static("의 ", 0), Slot("product"), Static(" 요금", 1))
    assert a.line == 3
    assert manifest.prompts["c"].text == "x = y"
    # pieces with nothing to say get no segment
    assert manifest.prompts["d"].parts == (Slot("amount"), Static(" ", None), Slot("months"),
                                           Static(".", None))  # fmt: skip


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a = 하나\n\n# x\na = 둘\n", "m:4: duplicate prompt id a .first on line 1."),
        ("a = 하나\nb =   \n", "m:2: prompt b has no text"),
        ("a = {merchant}\nb = {card_number} 입니다\n",
         r"m:2: prompt b: unknown placeholder \{card_number\}"),
        ("a = {}\n", r"m:1: prompt a: unknown placeholder \{\}"),
        ("a = {amount 원\n", r"m:1: prompt a: unbalanced braces: '\{' without '\}'"),
        ("a = {amo{unt}\n", r"m:1: prompt a: unbalanced braces: '\{' without '\}'"),
        ("x = y\na = amount} 원\n", r"m:2: prompt a: unbalanced braces: '\}' without '\{'"),
        ("a = 하나\n그냥 텍스트\n", "m:2: expected 'prompt.id = text'"),
        ("A.b = 하나\n", "m:1: prompt ids are"),
        ("a..b = 하나\n", "m:1: prompt ids are"),
        ("a/b = 하나\n", "m:1: prompt ids are"),
        ("a = ...\n", "m:1: prompt a has nothing to say"),
        ("# only a comment\n", "m: no prompts"),
    ],
)  # fmt: skip
def test_manifest_errors_name_the_line(content: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        parse_manifest(content, source="m")


def test_a_manifest_error_is_a_config_error_and_a_prompt_error() -> None:
    with pytest.raises(ManifestError) as info:
        parse_manifest("a = {x}\n")
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, PromptError)
    assert isinstance(info.value, ArspayError)


def test_loading_files(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes("\ufeffa = 하나\n".encode())
    assert load_manifest(good).prompts["a"].text == "하나"
    bad = tmp_path / "bad"
    bad.write_bytes("a = 하나\nb = ".encode() + "둘".encode("euc-kr") + b"\n")
    with pytest.raises(ManifestError, match=r"bad:2: not UTF-8"):
        load_manifest(bad)
    with pytest.raises(ManifestError, match="prompt manifest not found"):
        load_manifest(tmp_path / "missing")


def test_from_settings_validates_the_manifest(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest"
    manifest.write_text("a = 하나\na = 둘\n", encoding="utf-8")
    with pytest.raises(ManifestError, match="manifest:2: duplicate"):
        PromptBook.from_settings(PromptSettings(manifest=manifest, sounds_dir=tmp_path / "s"))
    assert not (tmp_path / "s").exists()  # no audio work
