"""vLLM prompt-embeds payload: base64 of torch.save bytes, decodable with weights_only=True."""

import base64
import io
import pickle

import pytest
import torch

from forgetlab.eco.serve.backends.payload import decode_prompt_embeds, encode_prompt_embeds
from forgetlab.errors import BadInput


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_round_trip_is_exact_with_weights_only_load(dtype):
    x = torch.randn(7, 24, generator=torch.Generator().manual_seed(0)).to(dtype)
    payload = encode_prompt_embeds(x)
    assert isinstance(payload, str)
    raw = base64.b64decode(payload, validate=True)  # standard base64, as vLLM decodes it
    loaded = torch.load(io.BytesIO(raw), weights_only=True)
    assert loaded.dtype == dtype and loaded.shape == (7, 24)
    assert torch.equal(loaded, x)
    assert torch.equal(decode_prompt_embeds(payload), x)


def test_a_view_serializes_only_itself():
    big = torch.randn(1000, 64)
    view = big[10:13]
    small = encode_prompt_embeds(view)
    assert torch.equal(decode_prompt_embeds(small), view)
    assert len(small) < len(encode_prompt_embeds(big)) / 50


def test_grad_tensor_is_detached():
    x = torch.randn(3, 4, requires_grad=True)
    out = decode_prompt_embeds(encode_prompt_embeds(x * 2))
    assert not out.requires_grad


@pytest.mark.parametrize("bad", [torch.randn(2, 3, 4), torch.randn(0, 4), torch.ones(3, 4, dtype=torch.long),
                                 [[1.0, 2.0]]])
def test_encode_rejects_wrong_shapes_and_types(bad):
    with pytest.raises(BadInput, match="prompt_embeds"):
        encode_prompt_embeds(bad)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_decode_refuses_garbage_and_pickles():
    with pytest.raises(BadInput, match="base64"):
        decode_prompt_embeds("not base64 !!")
    evil = base64.b64encode(pickle.dumps(_Evil())).decode()
    with pytest.raises(BadInput, match="weights_only"):
        decode_prompt_embeds(evil)
    buf = io.BytesIO()
    torch.save({"a": torch.ones(2)}, buf)
    with pytest.raises(BadInput, match="a tensor"):
        decode_prompt_embeds(base64.b64encode(buf.getvalue()).decode())
