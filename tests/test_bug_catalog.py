"""The catalogue of classic BPTT mistakes (rnnscope/gradcheck/bugs.py): its loop (loop.py) is
rnnscope's gradient, it covers SPEC section 11, and on an exported case every mistake is told
from every other, in the whole loop and in each layer."""

import itertools
import re

import numpy as np
import pytest

from rnnscope.errors import RnnscopeError
from rnnscope.gradcheck import bugs, loop
from rnnscope.gradcheck.cases import Case, random_case, read_case, write_case
from rnnscope.gradcheck.fd import rel_error
from rnnscope.gradcheck.naming import TOLERANCES, name_bug
from rnnscope.model import Model


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_the_classic_loop_gives_the_engines_gradients(layers):
    model, chunk = random_case(7, 5, layers, 6, 3, True, seed=layers)
    right = model.loss_and_grads(chunk["x"], chunk["y"], chunk["h0"]).grads
    grads = loop.bptt(model.params, chunk["x"], chunk["y"], chunk["h0"])
    for k in right:
        assert rel_error(grads[k], right[k]) < 1e-13, k


def test_every_id_of_spec_section_11_is_catalogued_or_a_verdict(shared):
    """The spec lives in ../shared (CI's own guarantee): skipped in a clone without it."""
    section = shared("SPEC.md").read_text().split("## 11.")[1].split("## 12.")[0]
    ids = set(re.findall(r"`([a-z_]+)`", section.split("Ids:")[1].split("`--json`")[0]))
    assert ids <= set(bugs.CATALOG) | {"forward_mismatch"}


def exported_calls(layers, seed, placed=False):
    """Every mutant's (and the right) gradients per length 1..T on the case `gradcheck --export
    --layers L --seed S` writes (test_the_case_written_is_the_case_read): each mistake in every
    layer it can sit in, or (placed) in each layer set of bugs.code_paths."""
    model, chunk = random_case(11, 8, layers, 6, 3, True, seed)
    lengths = list(range(1, 7))
    named = [("right", "", loop.RIGHT, None),
             *((mu.mistake.id, f"{mu.wrong} in {sorted(mu.layers or [])}", mu.lines, mu.layers)
               for mu in bugs.mutants("rnn", layers, placed))]
    return [(i, w, loop.bptt_calls(model.params, chunk["x"], chunk["y"], chunk["h0"], lengths,
                                   lines, where)) for i, w, lines, where in named]


@pytest.mark.parametrize("layers, seed", [(1, 0), (2, 0), (2, 1), (3, 2)])
def test_every_pair_of_mistakes_differs_on_the_exported_case(layers, seed):
    """Apart by 100 times the float32 tolerance, per length and on the whole chunk alone (where
    only unreset gradients, which need two calls, look right)."""
    apart = 100 * TOLERANCES["float32"].grad
    for (a, wa, ga), (b, wb, gb) in itertools.combinations(exported_calls(layers, seed), 2):
        whole = max(rel_error(ga[6][k], gb[6][k]) for k in ga[6])
        per_length = max(rel_error(ga[t][k], gb[t][k]) for t in ga for k in ga[t])
        assert per_length > apart, (a, wa, b, wb)
        if {a, b} != {"right", "gradients_not_reset"}:
            assert whole > apart, (a, wa, b, wb)


def test_every_mistake_in_each_layer_differs_from_the_others_on_the_exported_case():
    """3 layers: each mistake in each layer set it can sit in, apart (per length) from the
    right gradients, from every other mistake and from itself in another layer set, except
    where the gradients cannot tell them apart: a layer that has no gradients left to pass
    (missing_du zeroes every layer below it, so in layer 2 it is missing_du in every layer)."""
    apart = 100 * TOLERANCES["float32"].grad
    calls = exported_calls(3, 0, placed=True)
    same = []
    for (a, wa, ga), (b, wb, gb) in itertools.combinations(calls, 2):
        if max(rel_error(ga[t][k], gb[t][k]) for t in ga for k in ga[t]) <= apart:
            same.append((a, wa, b, wb))
    assert all(a == b == "missing_du" for a, _, b, _ in same), same


def test_the_case_written_is_the_case_read(tmp_path):
    write_case(tmp_path / "case.npz", num_layers=2, seed=3)
    with np.load(tmp_path / "case.npz") as z:
        arrays = {k: z[k] for k in z.files}
    model, chunk = random_case(11, 8, 2, 6, 3, True, 3)
    for k, v in {**model.params, **chunk}.items():
        np.testing.assert_array_equal(arrays[k], v)
    assert float(arrays["loss"]) == model.loss(chunk["x"], chunk["y"], chunk["h0"])[0]


def test_float32_gradients_on_a_chaotic_case_are_refused():
    """Whh x 4 over 30 steps: rnnscope's own float32 gradients are off by ~5%, so float32 cannot
    tell a right answer from a wrong one there."""
    model, chunk = random_case(11, 32, 1, 30, 3, True, 0)
    model.params["0.Whh"] *= 4
    single = Model(11, 32, 1, dtype="float32")
    for k, v in model.params.items():
        single.params[k][...] = v
    grads = single.loss_and_grads(chunk["x"], chunk["y"], chunk["h0"]).grads
    case = Case("rnn", model.params, chunk["x"], chunk["y"], {"h": chunk["h0"]}, {30: grads},
                dtype="float32")
    with pytest.raises(RnnscopeError, match="float64 gradients"):
        name_bug(case)
    case.calls[30] = model.loss_and_grads(chunk["x"], chunk["y"], chunk["h0"]).grads
    case.dtype = "float64"
    assert name_bug(case).verdict == "correct"


def test_a_read_case_keeps_the_users_precision(tmp_path):
    path = tmp_path / "case.npz"
    write_case(path)
    model, chunk = random_case(11, 8, 2, 6, 3, True, 0)
    grads = model.loss_and_grads(chunk["x"], chunk["y"], chunk["h0"]).grads
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **arrays, **{f"grad/{k}": g.astype(np.float32) for k, g in grads.items()})
    assert read_case(path).dtype == "float32"
