"""Reading a checkpoint that is not what its kind expects: one line, exit 2, no traceback."""

from __future__ import annotations

import pickle

import pytest

from skipsearch.configuration.errors import ConfigError
from skipsearch.models.edm import load_edm_denoiser
from skipsearch.models.edm2 import load_edm2_denoiser
from tests.conftest import run_cli
from tests.support.edm_format.writer import nvlabs_modules, write_edm2_snapshot, write_snapshot

TINY = {"img_resolution": 16, "img_channels": 1, "model_channels": 16, "channel_mult": [1, 2],
        "num_blocks": 1, "attn_resolutions": [8], "label_dim": 0}


def persistent_record(path, class_name: str, module_src: str, state: dict) -> None:
    """Pickle one NVlabs persistence record as the ``ema`` of a snapshot dict."""
    with nvlabs_modules() as load:
        hook = load("torch_utils.persistence")._reconstruct_persistent_obj

        class Record:
            def __reduce__(self):
                meta = {"type": "class", "version": 6, "module_src": module_src,
                        "class_name": class_name, "state": state}
                return hook, (meta,)

        path.write_bytes(pickle.dumps({"ema": Record()}))


# A wrapper with a UNet but none of the attributes EDM's wrappers keep.
HOLLOW = """import torch
class EDMPrecond(torch.nn.Module):
    def __setstate__(self, state):
        torch.nn.Module.__init__(self)
        self.model = torch.nn.Identity()
"""


def bad_files(tmp_path):
    text = tmp_path / "notes.pkl"
    text.write_text("not a pickle at all\n")
    number = tmp_path / "number.pkl"
    number.write_bytes(pickle.dumps({"ema": 3}))
    raises = tmp_path / "raises.pkl"
    persistent_record(raises, "EDMPrecond", "raise RuntimeError('boom')\n", {})
    hollow = tmp_path / "hollow.pkl"
    persistent_record(hollow, "EDMPrecond", HOLLOW, {})
    edm2 = tmp_path / "edm2.pkl"
    write_edm2_snapshot(edm2, img_resolution=16, img_channels=3, label_dim=0,
                        model_channels=16, channel_mult=[1, 2], num_blocks=1,
                        attn_resolutions=[8], channels_per_head=16)
    edm = tmp_path / "edm.pkl"
    write_snapshot(edm, "EDMPrecond", model_type="DhariwalUNet", **TINY)
    return [("edm", number, "expected an NVlabs EDM snapshot"),
            ("edm", raises, "expected an NVlabs EDM network pickle, could not read it "
             "(RuntimeError: boom)"),
            ("edm", hollow, "has no attribute 'img_channels'"),
            ("edm", edm2, "found Precond"), ("edm2", edm, "expected an NVlabs EDM2 snapshot"),
            ("edm2", raises, "RuntimeError: boom"), ("edm", text, "UnpicklingError")]


def test_each_bad_checkpoint_is_one_line_naming_the_file(tmp_path):
    loaders = {"edm": load_edm_denoiser, "edm2": load_edm2_denoiser}
    for kind, path, expected in bad_files(tmp_path):
        with pytest.raises(ConfigError) as caught:
            loaders[kind](path, True)
        message = str(caught.value)
        assert "\n" not in message and str(path) in message and expected in message, message


@pytest.mark.parametrize("name", ["raises.pkl", "notes.pkl"])
def test_the_cli_prints_one_line_and_exits_2(name, tmp_path):
    bad_files(tmp_path)
    path = tmp_path / name
    result = run_cli("inspect", "model=edm", f"model.path={path}", "model.trust_pickle=true",
                     f"out_dir={tmp_path}/outputs")
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and str(path) in lines[0] and "Traceback" not in result.stderr
    assert result.stdout == ""
