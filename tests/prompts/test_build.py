"""Building prompt audio with the real espeak-ng and sox (scripts/debian-packages): the
files are telephone WAVs, rebuilds skip what did not change, operator recordings win,
free-text values are generated once on demand.

These tests need espeak-ng and sox and fail (never skip) without them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import wave
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ivr.cli import app
from ivr.prompts import PromptBook, PromptError
from ivr.prompts.audio import AudioTools
from ivr.prompts.segments import FIXED_SEGMENTS, free_text_segment
from ivr.settings import PromptSettings

MANIFEST = Path(__file__).resolve().parents[2] / "prompts" / "manifest"
SAMPLE: dict[str, object] = {
    "merchant": "행복치과", "product": "임플란트", "issuer": "신한", "amount": 1234567890,
    "months": 3, "min_months": 2, "max_months": 12, "last4": "1234", "approval": "30012345",
}  # fmt: skip
FIXED = len(FIXED_SEGMENTS)  # 26 number and digit segments, built every time


def _settings(root: Path, manifest: Path = MANIFEST) -> PromptSettings:
    return PromptSettings(
        manifest=manifest, recorded_dir=root / "recorded", sounds_dir=root / "sounds"
    )


def _small(root: Path, content: str = "a.b = 안녕하세요.\nx = {merchant} 고객님\n") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "manifest"
    path.write_text(content, encoding="utf-8")
    return path


def _format(path: Path) -> tuple[int, int, int, float]:
    """(rate, channels, bytes per sample, seconds) read from the WAV header."""
    with wave.open(str(path), "rb") as w:
        rate = w.getframerate()
        return rate, w.getnchannels(), w.getsampwidth(), w.getnframes() / rate


def _tone(path: Path, seconds: float, freq: int) -> None:
    """A 44.1 kHz stereo 24-bit recording, as an operator might drop in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sox = shutil.which("sox")
    assert sox is not None
    subprocess.run(
        [sox, "-n", "-r", "44100", "-c", "2", "-b", "24", str(path), "synth", str(seconds),
         "sine", str(freq)],
        check=True,
    )  # fmt: skip


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> PromptSettings:
    """Every prompt of the real manifest built once (cold) into a fresh sounds dir."""
    settings = _settings(tmp_path_factory.mktemp("prompts"))
    report = asyncio.run(PromptBook.from_settings(settings).build())
    assert report.built == report.total > FIXED
    assert (report.cached, report.recorded, report.overrides) == (0, 0, 0)
    return settings


def test_espeak_ng_and_sox_are_installed() -> None:
    assert shutil.which("espeak-ng"), "espeak-ng missing: run scripts/bootstrap"
    assert shutil.which("sox"), "sox missing: run scripts/bootstrap"


def test_a_cold_build_writes_telephone_wavs_and_no_temp_files(built: PromptSettings) -> None:
    files = [p for p in built.sounds_dir.rglob("*") if p.is_file()]
    wavs = [p for p in files if p.suffix == ".wav"]
    assert len(wavs) > FIXED
    for wav in wavs:
        rate, channels, width, seconds = _format(wav)
        assert (rate, channels, width) == (8000, 1, 2), wav
        assert 0.1 < seconds < 15, wav
        assert wav.with_name(wav.name + ".sha").is_file()
        assert wav.stat().st_mode & 0o777 == 0o644, wav  # readable by an asterisk user
    assert not [p for p in files if p.name.startswith(".")]  # temp files are gone
    assert {p.relative_to(built.sounds_dir).parts[0] for p in wavs} == {"s", "n", "d"}


@pytest.mark.anyio
async def test_every_prompt_renders_to_files_that_exist(built: PromptSettings) -> None:
    book = PromptBook.from_settings(built)
    for prompt_id in sorted(book.ids):
        values = {name: SAMPLE[name] for name in book.slots(prompt_id)}
        sounds = await book.render(prompt_id, **values)
        assert sounds, prompt_id
        for sound in sounds:
            assert sound.startswith("arspay/")
            path = built.sounds_dir / f"{sound.removeprefix('arspay/')}.wav"
            assert path.is_file(), (prompt_id, sound)
            assert book.sha256(sound) == _sha(path)


@pytest.mark.anyio
async def test_render_plays_segments_in_order(built: PromptSettings) -> None:
    book = PromptBook.from_settings(built)
    sounds = await book.render("pay.details", product="임플란트", amount=53000)
    g = free_text_segment("임플란트", voice="ko", speed_wpm=150).sound
    assert sounds == [
        g, "arspay/s/pay.details.0", "arspay/n/5", "arspay/n/man", "arspay/n/3",
        "arspay/n/cheon", "arspay/s/pay.details.1",
    ]  # fmt: skip
    assert await book.render("pay.done", approval="1004") == [
        "arspay/s/pay.done.0", "arspay/d/1", "arspay/d/0", "arspay/d/0", "arspay/d/4",
        "arspay/s/pay.done.1",
    ]  # fmt: skip
    assert await book.render("common.wait") == ["arspay/s/common.wait.0"]


@pytest.mark.anyio
async def test_rendering_made_prompts_never_yields_to_the_event_loop(
    built: PromptSettings,
) -> None:
    """Issue #10: a render that awaited even made files let other work (a consent
    write, other calls) run first while the payer waited for the prompt."""
    book = PromptBook.from_settings(built)
    await book.build()  # the engine builds at start; every static segment is known
    for prompt_id, values in [("card.number", {}), ("pay.done", {"approval": "1004"})]:
        step = book.render(prompt_id, **values)
        with pytest.raises(StopIteration) as finished:
            step.send(None)  # runs to the end without suspending once
        assert finished.value.value == await book.render(prompt_id, **values)


@pytest.mark.anyio
async def test_a_second_build_is_all_cached_and_fast(built: PromptSettings) -> None:
    before = {p: p.stat().st_mtime_ns for p in built.sounds_dir.rglob("*.wav")}
    report = await PromptBook.from_settings(built).build()
    assert (report.built, report.recorded) == (0, 0)
    assert report.cached == report.total
    assert report.seconds < 2
    assert {p: p.stat().st_mtime_ns for p in built.sounds_dir.rglob("*.wav")} == before


@pytest.mark.anyio
async def test_a_recording_overrides_and_replacing_it_rebuilds(tmp_path: Path) -> None:
    settings = _settings(tmp_path, _small(tmp_path))
    wav = settings.sounds_dir / "s" / "a.b.0.wav"
    report = await PromptBook.from_settings(settings).build()
    assert (report.built, report.total) == (FIXED + 2, FIXED + 2)
    generated = _sha(wav)

    recording = settings.recorded_dir / "s" / "a.b.0.wav"
    _tone(recording, 0.5, 440)
    _tone(settings.recorded_dir / "n" / "man.wav", 0.3, 660)
    report = await PromptBook.from_settings(settings).build()
    assert (report.recorded, report.built, report.overrides) == (2, 0, 2)
    assert _format(wav)[:3] == (8000, 1, 2)
    assert _format(wav)[3] == pytest.approx(0.5, abs=0.01)
    assert _sha(wav) != generated
    book = PromptBook.from_settings(settings)
    assert book.sha256("arspay/s/a.b.0") == _sha(wav)

    report = await PromptBook.from_settings(settings).build()  # unchanged: cached
    assert (report.recorded, report.built, report.overrides) == (0, 0, 2)

    _tone(recording, 1.0, 550)  # replaced: converted again
    report = await PromptBook.from_settings(settings).build()
    assert (report.recorded, report.built) == (1, 0)
    assert _format(wav)[3] == pytest.approx(1.0, abs=0.01)
    assert book.sha256("arspay/s/a.b.0") == _sha(wav)  # the sha cache sees the new file

    recording.unlink()  # removed: generated speech again
    report = await PromptBook.from_settings(settings).build()
    assert (report.recorded, report.built, report.overrides) == (0, 1, 1)
    assert _sha(wav) == generated


@pytest.mark.anyio
async def test_a_broken_recording_is_an_audio_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path, _small(tmp_path))
    bad = settings.recorded_dir / "s" / "a.b.0.wav"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"RIFF nonsense")
    with pytest.raises(PromptError, match=r"recording .*a\.b\.0\.wav"):
        await PromptBook.from_settings(settings).build(["a.b"])


@pytest.mark.anyio
async def test_recordings_named_like_no_segment_are_reported(tmp_path: Path) -> None:
    settings = _settings(tmp_path, _small(tmp_path))
    _tone(settings.recorded_dir / "s" / "a.b.9.wav", 0.2, 440)
    _tone(settings.recorded_dir / "s" / "x.0.wav", 0.2, 440)  # x's only static piece
    report = await PromptBook.from_settings(settings).build(["a.b"])
    assert report.unmatched_recordings == ("s/a.b.9",)
    assert report.total == FIXED + 1
    assert report.overrides == 0  # x was not built this time


@pytest.mark.anyio
async def test_free_text_is_generated_once_on_demand_and_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    said: list[str] = []
    synthesize = AudioTools.synthesize

    async def counting(self: AudioTools, text: str, dest: Path, *, pause_s: float = 0.0) -> None:
        said.append(text)
        await synthesize(self, text, dest, pause_s=pause_s)

    monkeypatch.setattr(AudioTools, "synthesize", counting)
    settings = _settings(tmp_path, _small(tmp_path))
    book = PromptBook.from_settings(settings)
    first, second = await asyncio.gather(
        book.render("x", merchant="행복치과"), book.render("x", merchant=" 행복치과 ")
    )
    assert first == second
    assert sorted(said) == ["고객님", "행복치과"]  # the static piece and the value, once each
    g = first[0].removeprefix("arspay/")
    assert g.startswith("g/")
    path = settings.sounds_dir / f"{g}.wav"
    assert _format(path)[:3] == (8000, 1, 2)
    stamp = path.stat().st_mtime_ns

    assert await book.render("x", merchant="행복치과") == first
    assert await PromptBook.from_settings(settings).render("x", merchant="행복치과") == first
    assert len(said) == 2  # cached in memory, then on disk for a new book
    assert path.stat().st_mtime_ns == stamp

    other = await book.render("x", merchant="사랑치과")
    assert other[0] != first[0]
    assert other[1:] == first[1:]
    assert len(said) == 3


@pytest.mark.anyio
async def test_a_caller_that_goes_away_does_not_leave_half_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = asyncio.Event()
    synthesize = AudioTools.synthesize

    async def signalling(self: AudioTools, text: str, dest: Path, *, pause_s: float = 0.0) -> None:
        started.set()
        await asyncio.sleep(0.05)  # the caller hangs up while this piece is being made
        await synthesize(self, text, dest, pause_s=pause_s)

    monkeypatch.setattr(AudioTools, "synthesize", signalling)
    settings = _settings(tmp_path, _small(tmp_path))
    book = PromptBook.from_settings(settings)
    task = asyncio.create_task(book.render("x", merchant="행복치과"))
    await started.wait()  # a sleep here was flaky: a loaded CI machine let the render finish
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sounds = await book.render("x", merchant="행복치과")  # the work went on; joined
    files = [p for p in settings.sounds_dir.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.startswith(".")]
    for sound in sounds:
        assert _format(settings.sounds_dir / f"{sound.removeprefix('arspay/')}.wav")[2] == 2


@pytest.mark.anyio
async def test_changing_a_text_rebuilds_only_that_segment(tmp_path: Path) -> None:
    settings = _settings(tmp_path, _small(tmp_path, "a = 하나입니다.\nb = 둘입니다.\n"))
    await PromptBook.from_settings(settings).build()
    _small(tmp_path, "a = 하나예요.\nb = 둘입니다.\n")
    report = await PromptBook.from_settings(settings).build()
    assert (report.built, report.cached) == (1, FIXED + 1)


def test_free_text_names_depend_on_voice_speed_and_text() -> None:
    a = free_text_segment("행복치과", voice="ko", speed_wpm=150)
    assert a == free_text_segment("행복치과", voice="ko", speed_wpm=150)
    assert a.name != free_text_segment("행복치과", voice="ko", speed_wpm=160).name
    assert a.name != free_text_segment("행복치과", voice="ko+f2", speed_wpm=150).name
    assert a.name != free_text_segment("사랑치과", voice="ko", speed_wpm=150).name
    assert len(a.name) == len("g/") + 16


@pytest.mark.parametrize(
    ("sound", "message"),
    [
        ("arspay/s/nothing.0", "no audio file for arspay/s/nothing.0"),
        ("custom/s/common.wait.0", "not an arspay sound name"),
        ("arspay/../x", "not an arspay sound name"),
        ("arspay/s/a b", "not an arspay sound name"),
    ],
)
def test_sha256_of_a_bad_sound_name(built: PromptSettings, sound: str, message: str) -> None:
    with pytest.raises(PromptError, match=message):
        PromptBook.from_settings(built).sha256(sound)


def test_unknown_ids_are_refused_by_build(tmp_path: Path) -> None:
    book = PromptBook.from_settings(_settings(tmp_path, _small(tmp_path)))
    with pytest.raises(PromptError, match="unknown prompt id 'nope'"):
        asyncio.run(book.build(["nope"]))


def test_the_cli_builds_lists_and_says(tmp_path: Path) -> None:
    settings = _settings(tmp_path, _small(tmp_path))
    config = tmp_path / "arspay.toml"
    config.write_text(
        f'[prompts]\nmanifest = "{settings.manifest}"\nsounds_dir = "{settings.sounds_dir}"\n'
        f'recorded_dir = "{settings.recorded_dir}"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    base = ["--config", str(config)]

    out = runner.invoke(app, [*base, "prompts", "build"])
    assert out.exit_code == 0, out.output
    assert f"{FIXED + 2} segments in {settings.sounds_dir}: {FIXED + 2} built" in out.output

    out = runner.invoke(app, [*base, "--json", "prompts", "build"])
    assert json.loads(out.stdout)[0]["cached"] == FIXED + 2

    out = runner.invoke(app, [*base, "--json", "prompts", "list"])
    assert json.loads(out.stdout) == [
        {"id": "a.b", "text": "안녕하세요."}, {"id": "x", "text": "{merchant} 고객님"},
    ]  # fmt: skip

    out = runner.invoke(app, [*base, "prompts", "say", "x", "merchant=행복치과"])
    assert out.exit_code == 0, out.output
    lines = out.stdout.splitlines()
    assert lines[0] == "행복치과 고객님"
    assert lines[1].startswith("arspay/g/")
    assert lines[2] == "arspay/s/x.0"

    out = runner.invoke(app, [*base, "prompts", "say", "x"])
    assert out.exit_code == 2
    assert "prompt x: missing value(s) for merchant" in out.output
