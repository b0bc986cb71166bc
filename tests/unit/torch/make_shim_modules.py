"""Writes the TorchScript modules that tests/unit/test_torch_shim.c loads.

Usage: /usr/bin/python3 make_shim_modules.py OUT_DIR

Each module mimics one stage signature of a Ludwig TorchScript export (see
shared/LUDWIG_EXPORT.md, "Signatures") with arithmetic simple enough for the
C test to check exact values.
"""
import os
import sys
from typing import Any, Dict, List, Tuple, Union

import torch


class Preprocessor(torch.nn.Module):
    """Ludwig's preprocessor signature: a Union-valued dict in, tensors out.

    Like Ludwig, it indexes the features it needs (a missing one raises) and
    dispatches on the runtime type of each value."""

    def forward(
        self,
        inputs: Dict[
            str,
            Union[torch.Tensor, List[Tuple[torch.Tensor, int]], List[torch.Tensor], List[str]],
        ],
    ) -> Dict[str, torch.Tensor]:
        out: Dict[str, torch.Tensor] = {}
        text = inputs["text"]
        if torch.jit.isinstance(text, List[str]):
            out["text"] = torch.tensor([len(s) for s in text], dtype=torch.int64)
        else:
            raise ValueError("text must be a list of strings")
        num = inputs["num"]
        if isinstance(num, torch.Tensor):
            out["num"] = num * 2
        else:
            raise ValueError("num must be a tensor")
        images = inputs["images"]
        if torch.jit.isinstance(images, List[torch.Tensor]):
            stacked = torch.stack(images)
            # In-place work on a fresh tensor, as Ludwig's image code does: it
            # must be allowed under inference mode.
            scaled = stacked.to(torch.float32)
            scaled.div_(2.0)
            out["images"] = scaled
        else:
            raise ValueError("images must be a list of tensors")
        # Optional, as Ludwig's audio input: each waveform's sum times its rate.
        if "audio" in inputs:
            audio = inputs["audio"]
            if torch.jit.isinstance(audio, List[Tuple[torch.Tensor, int]]):
                out["audio"] = torch.stack([wave.sum() * rate for wave, rate in audio])
            else:
                raise ValueError("audio must be a list of (waveform, sample rate)")
        return out


class Predictor(torch.nn.Module):
    """Tensor dict in and out; `same` aliases the input tensor itself."""

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
        x = inputs["x"]
        if bool((x < 0).any()):
            raise ValueError("bad value in x")
        return {"x::same": x, "x::double": x.to(torch.float64) * 2}


class Postprocessor(torch.nn.Module):
    """Returns every value kind a Ludwig postprocessor can: Tensor, List[str],
    ragged List[List[str]] and ragged List[Tensor], plus empty lists whose
    element type is only known statically."""

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        x = inputs["x"]
        vocab = ["zero", "one", "two", "three"]
        counts: List[int] = x.tolist()
        names: List[str] = [vocab[c] for c in counts]
        rows: List[List[str]] = [vocab[:c] for c in counts]
        probs: List[torch.Tensor] = [torch.arange(c, dtype=torch.float32) / 4 for c in counts]
        no_strings: List[str] = []
        no_rows: List[List[str]] = []
        no_tensors: List[torch.Tensor] = []
        out: Dict[str, Any] = {}
        out["n::predictions"] = x.to(torch.float32) * 0.5
        out["c::predictions"] = names
        out["s::predictions"] = rows
        out["s::probabilities"] = probs
        out["b::predictions"] = x > 1
        out["total"] = x.sum()
        out["pair::transposed"] = torch.stack([x, x * 10]).t()
        out["e::strings"] = no_strings
        out["e::rows"] = no_rows
        out["e::tensors"] = no_tensors
        return out


class BadOutput(torch.nn.Module):
    """Returns values the shim cannot convert, chosen by the input key."""

    def forward(self, inputs: Dict[str, torch.Tensor]) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        if "int" in inputs:
            out["count"] = 3
        else:
            out["cplx"] = inputs["x"].to(torch.complex64)
        return out


class NotADict(torch.nn.Module):
    def forward(self, inputs: Dict[str, torch.Tensor]) -> torch.Tensor:
        return inputs["x"]


class TensorArgument(torch.nn.Module):
    """Not a stage: forward takes a bare tensor, which the shim refuses."""

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"x": x}


MODULES = {
    "preprocessor.pt": Preprocessor,
    "predictor.pt": Predictor,
    "postprocessor.pt": Postprocessor,
    "bad_output.pt": BadOutput,
    "not_a_dict.pt": NotADict,
    "tensor_argument.pt": TensorArgument,
}


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: make_shim_modules.py OUT_DIR")
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    for file_name, cls in MODULES.items():
        torch.jit.script(cls().eval()).save(os.path.join(out_dir, file_name))


if __name__ == "__main__":
    main()
