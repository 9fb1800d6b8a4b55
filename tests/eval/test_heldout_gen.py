"""The heldout_gen task: held-out prompts of the training generators, both families kept by --limit, never a
training prompt, scored by the RLVR reward's verifiers."""

from __future__ import annotations

from tulu.data.rlvr_sources import generate
from tulu.eval.tasks import get_task


def test_heldout_gen_items_alternate_and_never_equal_training_prompts():
    task = get_task("heldout_gen")
    items = task.load()
    assert len(items) == 200 and len({it.id for it in items}) == 200
    assert [it.meta["subset"] for it in items[:4]] == ["constraints", "arith", "constraints", "arith"]
    train = {r["messages"][-1]["content"] for src in ("rlvr:constraints", "rlvr:arith")
             for r in generate(src, 100, 0, "train")}
    assert not train & {it.prompt for it in items}
    arith = items[1]
    # the verdict twice: overall and under the item's family, so the report pairs each family across stages
    assert task.score(arith, [f"The answer is {arith.answer}."]) == {"accuracy": 1.0, "accuracy/arith": 1.0}
    assert task.score(arith, ["no idea"]) == {"accuracy": 0.0, "accuracy/arith": 0.0}
    scores = [{"accuracy": 1.0, "accuracy/constraints": 1.0}, {"accuracy": 0.0, "accuracy/arith": 0.0},
              {"accuracy": 0.0, "accuracy/constraints": 0.0}, {"accuracy": 0.0, "accuracy/arith": 0.0}]
    agg = task.aggregate(items[:4], scores)
    assert agg["accuracy"].value == 25.0 and agg["accuracy/constraints"].value == 50.0
    assert agg["accuracy/arith"].value == 0.0
