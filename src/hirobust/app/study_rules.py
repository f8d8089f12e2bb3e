"""The evidence study's verdicts, decided mechanically by rules that live in the study's config (``rules:``),
fixed before the data: each finding's hypothesis, the statistics it reads, the test on each and how they combine.

A rule is a list of clauses, all of which must pass::

    c:
      hypothesis: HiRo is more robust at every superclass level ...
      each_run: hiro            # one verdict per run whose name starts with this (forests excluded)
      clauses:
        - {stat: paired.robust, levels: superclass, test: higher, over: all}
        - {stat: paired.tsr_matched, levels: superclass, test: lower, over: all}
        - {stat: paired.robust, levels: leaf, test: within}

``stat`` is a path in the main part's analysis (``paired.<run>.robust``, ``premise.a``, ...; ``<run>`` is filled in
for ``paired``, ``unseen_vs_clip`` and ``unseen_paired``); ``levels``: leaf, superclass or all; ``test``: higher or
lower (the 95% interval excludes 0 and its deciding bound is ≥ 2 Monte Carlo errors from it), not_lower,
not_higher, or within
(two one-sided tests at ± ``margin``: the 90% interval inside); ``over``: all or any of the levels (and runs). A
clause passes, fails or stays open; the rule is "reproduced" when every clause passes, "not reproduced" when one
fails, else "inconclusive". A changed rule is a new, dated version; the report shows every version's verdicts.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..stats import equivalence

ONE_POINT = 0.01  # rule v1: "leaf within 1 point" = the 95% interval's lower bound above -1 point

TESTS = ("higher", "lower", "not_lower", "not_higher", "within")


def _outcome(d: dict, test: str, margin: float) -> tuple[str, str, float]:
    """(pass / fail / open, what decided it, the deciding bound's distance from the threshold in Monte Carlo
    errors) for one difference."""
    dec = d.get("decision", d.get("verdict"))
    dist = d.get("mc_distance", float("nan"))
    if test == "within":
        eq = equivalence(d, margin)
        lo, hi = d["ci90"]
        se = max(d.get("mc_se_ci90") or [0.0])
        gap = min(abs(lo + margin), abs(margin - hi))
        dist = gap / se if se > 0 else float("inf")
        return ("pass" if eq.startswith("within") and "borderline" not in eq else
                "fail" if eq.startswith("outside") and "borderline" not in eq else "open"), eq, dist
    if test in ("not_lower", "not_higher"):
        bad = test[4:]
        return ("fail" if dec == bad else "open" if dec.startswith(f"borderline ({bad}") else "pass"), dec, dist
    other = "lower" if test == "higher" else "higher"
    return ("pass" if dec == test else "fail" if dec == other else "open"), dec, dist


def _levels(stat: dict, which: str) -> dict:
    if which == "leaf":
        return {b: d for b, d in stat.items() if b == "0"}
    if which == "superclass":
        return {b: d for b, d in stat.items() if b != "0"}
    return dict(stat)


def _get(part: dict, path: str, run: str | None):
    node = part
    for key in path.split("."):
        node = node.get(key, {}) if isinstance(node, dict) else {}
        if run is not None and key in ("paired", "unseen_vs_clip", "unseen_paired", "seen_paired", "knob_slope"):
            node = node.get(run, {})
    return node if isinstance(node, dict) else {}


def apply_rule(part: dict, rule: dict, margin: float, runs: list[str]) -> dict:
    """One finding's verdict from ``rule``'s clauses over ``runs`` (None: a rule about the baseline alone)."""
    states, evidence = [], []
    for c in rule["clauses"]:
        outcomes = []
        for run in runs:
            for b, d in _levels(_get(part, c["stat"], run), c.get("levels", "all")).items():
                o, why, dist = _outcome(d, c["test"], margin)
                outcomes.append(o)
                evidence.append({"stat": c["stat"], "run": run, "level": b, "test": c["test"], "outcome": o,
                                 "decided_by": why, "value": d.get("value"), "ci95": d.get("ci95"),
                                 "ci90": d.get("ci90"), "mc_distance": dist})
        if not outcomes:
            states.append("open")
        elif c.get("over", "all") == "all":
            states.append("fail" if "fail" in outcomes else "pass" if set(outcomes) == {"pass"} else "open")
        else:
            states.append("pass" if "pass" in outcomes else "fail" if set(outcomes) == {"fail"} else "open")
    verdict = ("reproduced" if states and all(s == "pass" for s in states) else
               "not reproduced" if "fail" in states else "inconclusive")
    if not evidence:  # the numbers it reads are not there yet (cells not run): no verdict
        verdict = "not run"
    borderline = any("borderline" in str(e["decided_by"]) for e in evidence)
    return {"verdict": verdict + (" (borderline)" if borderline and verdict == "inconclusive" else ""),
            "hypothesis": rule.get("hypothesis", ""), "clauses": rule["clauses"], "clause_states": states,
            "evidence": evidence}


def check_rules(rules: dict) -> None:
    """Refuse a malformed ``rules:`` section before any cell runs."""
    for version in rules.get("versions", []):
        for name, rule in (version.get("findings") or {}).items():
            for c in rule.get("clauses", []):
                if c.get("test") not in TESTS or "stat" not in c:
                    raise ConfigError(f"study rules {version.get('version')!r}, finding {name!r}: a clause needs "
                                     f"'stat' and a 'test' in {', '.join(TESTS)}; got {c}")
                if c.get("levels", "all") not in ("leaf", "superclass", "all") or c.get("over", "all") not in (
                        "all", "any"):
                    raise ConfigError(f"study rules, finding {name!r}: levels must be leaf/superclass/all and over "
                                     f"all/any; got {c}")


def rule_verdicts(main: dict, rules: dict, parts: dict | None = None) -> dict:
    """{version: {finding: verdict entry}} for every dated rule version in ``rules``; a rule reads the main part
    (with the study-wide ``knob_slope``), or ``parts[rule["part"]]`` when it names one."""
    out = {}
    for version in rules.get("versions", []):
        margin = float(version.get("margin", 0.01))
        res = {}
        for name, rule in (version.get("findings") or {}).items():
            if rule.get("part"):
                if rule["part"] not in (parts or {}):
                    res[name] = {"verdict": "not run", "hypothesis": rule.get("hypothesis", ""), "evidence": [],
                                 "clauses": rule["clauses"], "clause_states": []}
                    continue
                res.update(rule_verdicts(parts[rule["part"]], {"versions": [{**version, "findings": {
                    name: {k: v for k, v in rule.items() if k != "part"}}}]})[version["version"]])
                continue
            prefix = rule.get("each_run")
            if prefix:
                runs = [r for r in main.get("paired", {}) if r.startswith(prefix) and "forest" not in r]
                for run in runs:
                    res[f"{name} ({run})"] = apply_rule(main, rule, margin, [run])
            elif rule.get("runs") == "all":
                res[name] = apply_rule(main, rule, margin, sorted(main.get("unseen_vs_clip", {})))
            else:
                res[name] = apply_rule(main, rule, margin, [None])
        out[version["version"]] = res
    return out


def finding_verdicts(study: dict, cfg) -> dict:
    """Rule v1, as the study was first analysed (kept to show beside the current rules): the verdict on each of
    the paper's findings (a)–(e) from the main part's numbers, with the rule used."""
    main = study["parts"].get(next(iter(cfg.parts)), {})
    v: dict = {}
    pa = main.get("premise", {})
    if pa.get("a"):
        ds = [d["verdict"] for d in pa["a"].values()]
        v["a"] = _rule(any(d == "higher" for d in ds), all(d == "lower" for d in ds),
                       "some superclass level has TSR(b→b) − TSR(0→0) > 0 (interval) for the baseline")
    if pa.get("b"):
        ds = [d["verdict"] for d in pa["b"].values()]
        v["b"] = _rule(all(d == "higher" for d in ds), all(d == "lower" for d in ds),
                       "TSR(a→0) > TSR(0→0)/2 (interval) for every superclass level a, baseline")
    paired = main.get("paired", {})
    for run in [r for r in paired if r.startswith("hiro") and "forest" not in r]:
        p = paired[run]
        sup = [d["verdict"] for b, d in p["robust"].items() if b != "0"]
        tsr = [d["verdict"] for d in p["tsr_to_leaf"].values()]
        leaf = p["robust"].get("0")
        leaf_ok = leaf is not None and leaf["ci95"][0] >= -ONE_POINT
        leaf_bad = leaf is not None and leaf["ci95"][1] < -ONE_POINT
        good = bool(sup) and all(d == "higher" for d in sup) and all(d == "lower" for d in tsr) and leaf_ok
        bad = any(d == "lower" for d in sup) or any(d == "higher" for d in tsr) or leaf_bad
        v[f"c ({run})"] = _rule(good, bad, "every superclass level higher than the baseline, TSR(a→0) lower, leaf "
                                           "robust difference's interval above −1 point")
    forest = [r for r in paired if "forest" in r]
    single = cfg.tune.run if cfg.tune is not None else None
    if forest and single in main.get("runs", {}) and forest[0] in main.get("runs", {}):
        d = main.get("forest_vs_single", {})
        ds = [x["verdict"] for x in d.get("robust", {}).values()]
        v["d"] = _rule(any(x == "higher" for x in ds) and not any(x == "lower" for x in ds),
                       any(x == "lower" for x in ds), f"{forest[0]} − {single}: some level higher, none lower")
    unseen = main.get("unseen_vs_clip", {})
    if unseen:
        ds = [r["robust"]["0"]["verdict"] for r in unseen.values() if "0" in r["robust"]]
        v["e"] = _rule(bool(ds) and all(x == "higher" for x in ds), any(x == "lower" for x in ds),
                       "every fine-tuned run's leaf robust accuracy on unseen leaves above the pretrained model's")
    return v


def _rule(good: bool, bad: bool, rule: str) -> dict:
    return {"verdict": "reproduced" if good else "not reproduced" if bad else "inconclusive", "rule": rule}
