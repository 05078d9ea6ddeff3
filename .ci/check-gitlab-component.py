#!/usr/bin/env python3
"""The GitLab CI/CD component, included the way GitLab includes it.

For templates/gitops-canary/template.yml:
  - the header document is `spec:` only and validates against GitLab's CI schema;
  - the body defines jobs only (no `stages:`, `default:`, `workflow:`, `include:`,
    `variables:`: an included top-level key replaces or changes the host's);
  - `$[[ inputs.x ]]` is interpolated from the include's inputs or the spec defaults, as GitLab
    does (unknown inputs, a missing value, a value outside `options` or not matching `regex`
    are errors);
  - the result is merged into host pipelines that have their own `stages:` (host keys win, as
    with GitLab's include), and then: the host's stages are kept, every job's stage is one of
    them (or .pre/.post), every `needs:` names a job of the pipeline, and the merged document
    validates with `check-jsonschema --builtin-schema vendor.gitlab-ci`.
A host whose stages lack the component's stage must be reported: the check checks itself.
Also: the example workflows/gitlab-ci.yml includes this component with inputs it declares.
"""
import copy
import os
import re
import subprocess
import sys
import tempfile

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPONENT = os.path.join(ROOT, "templates", "gitops-canary", "template.yml")
EXAMPLE = os.path.join(ROOT, "workflows", "gitlab-ci.yml")

# Top-level keys that are not jobs (https://docs.gitlab.com/ci/yaml/).
GLOBAL_KEYS = {
    "default", "include", "stages", "variables", "workflow", "spec",
    "image", "services", "cache", "before_script", "after_script", "pages",
}
# Keys an included component must not set: they change the whole host pipeline.
FORBIDDEN_IN_COMPONENT = GLOBAL_KEYS - {"pages"}
DEFAULT_STAGES = ["build", "test", "deploy"]
INTERPOLATION = re.compile(r"\$\[\[\s*(.*?)\s*\]\]")


class Failure(Exception):
    pass


def load_component(path):
    with open(path, encoding="utf-8") as f:
        docs = list(yaml.safe_load_all(f))
    if len(docs) != 2:
        raise Failure(f"{path}: want a spec header, `---`, then the jobs; got {len(docs)} documents")
    header, body = docs
    if not isinstance(header, dict) or set(header) != {"spec"}:
        raise Failure(f"{path}: the header document must hold `spec:` only")
    if not isinstance(body, dict):
        raise Failure(f"{path}: the body is not a mapping")
    bad = sorted(set(body) & FORBIDDEN_IN_COMPONENT)
    if bad:
        raise Failure(f"{path}: top-level {bad} in a component changes the host pipeline; define jobs only")
    return header, body


def resolve_inputs(spec, given):
    declared = spec.get("inputs") or {}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise Failure(f"unknown inputs {unknown} (declared: {sorted(declared)})")
    values = {}
    for name, decl in declared.items():
        decl = decl or {}
        if name in given:
            value = given[name]
        elif "default" in decl:
            value = decl["default"]
        else:
            raise Failure(f"input `{name}` has no default and was not given")
        if "options" in decl and value not in decl["options"]:
            raise Failure(f"input `{name}`: {value!r} is not one of {decl['options']}")
        if "regex" in decl and not re.search(decl["regex"], str(value)):
            raise Failure(f"input `{name}`: {value!r} does not match /{decl['regex']}/")
        values[name] = value
    return values


def interpolate(node, values):
    """GitLab interpolates inside strings (keys and values); a string that is only one
    interpolation takes the input's type."""
    def one(text):
        def sub(match):
            expr = match.group(1)
            m = re.fullmatch(r"inputs\.([A-Za-z0-9_-]+)", expr)
            if not m:
                raise Failure(f"unsupported interpolation $[[ {expr} ]]")
            if m.group(1) not in values:
                raise Failure(f"$[[ {expr} ]] names an undeclared input")
            return str(values[m.group(1)])
        whole = INTERPOLATION.fullmatch(text)
        if whole:
            m = re.fullmatch(r"inputs\.([A-Za-z0-9_-]+)", whole.group(1))
            if m and m.group(1) in values and not isinstance(values[m.group(1)], str):
                return values[m.group(1)]
        return INTERPOLATION.sub(sub, text)

    if isinstance(node, dict):
        return {one(k) if isinstance(k, str) else k: interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, values) for v in node]
    if isinstance(node, str):
        return one(node)
    return node


def deep_merge(base, override):
    """GitLab's include merge: the including file's keys win; mappings merge deeply."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def jobs_of(config):
    return {k: v for k, v in config.items()
            if k not in GLOBAL_KEYS and not k.startswith(".") and isinstance(v, dict)}


def check_merged(host, merged):
    problems = []
    host_stages = host.get("stages", DEFAULT_STAGES)
    if merged.get("stages", DEFAULT_STAGES) != host_stages:
        problems.append(f"the host's stages {host_stages} became {merged.get('stages')}")
    stages = set(host_stages) | {".pre", ".post"}
    jobs = jobs_of(merged)
    for name, job in jobs.items():
        stage = job.get("stage", "test")
        if stage not in stages:
            problems.append(f"job `{name}` is in stage `{stage}`, not one of the host's {host_stages}")
        for need in job.get("needs") or []:
            target = need["job"] if isinstance(need, dict) else need
            if target not in jobs:
                problems.append(f"job `{name}` needs `{target}`, which is not in the pipeline")
    return problems


def schema_check(docs):
    """check-jsonschema over each document, one file each."""
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, (label, doc) in enumerate(docs):
            path = os.path.join(tmp, f"{i}-{label}.gitlab-ci.yml")
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump(doc, f, sort_keys=False)
            paths.append(path)
        result = subprocess.run(
            ["check-jsonschema", "--builtin-schema", "vendor.gitlab-ci", *paths],
            capture_output=True, text=True)
        if result.returncode != 0:
            raise Failure("check-jsonschema vendor.gitlab-ci:\n" + result.stdout + result.stderr)


def include_into(host, header, body, inputs):
    values = resolve_inputs(header["spec"], inputs)
    component = interpolate(body, values)
    leftovers = INTERPOLATION.findall(yaml.safe_dump(component))
    if leftovers:
        raise Failure(f"not interpolated: {leftovers}")
    return deep_merge(component, {k: v for k, v in host.items() if k != "include"})


def main():
    header, body = load_component(COMPONENT)
    print(f"component: {os.path.relpath(COMPONENT, ROOT)}: jobs {sorted(jobs_of(body))}")

    hosts = [
        ("defaults, host with its own stages",
         {"stages": ["build", "test", "deploy", "verify"],
          "build-app": {"stage": "build", "script": ["make"]},
          "verify-app": {"stage": "verify", "script": ["make verify"]}},
         {}),
        ("stage override",
         {"stages": ["lint", "canary"],
          "lint": {"stage": "lint", "script": ["yamllint ."]}},
         {"stage": "canary", "command": "run", "token_variable": "GITOPS_CANARY_TOKEN",
          "image": "registry.example.com/mirror/gitops-canary@sha256:" + "0" * 64}),
        ("host without stages: GitLab's defaults", {"lint": {"script": ["true"]}}, {}),
    ]
    merged_docs = [("spec", header)]
    for label, host, inputs in hosts:
        merged = include_into(host, header, body, inputs)
        problems = check_merged(host, merged)
        if problems:
            raise Failure(f"{label}:\n  " + "\n  ".join(problems))
        merged_docs.append((re.sub(r"\W+", "-", label), {**merged, "stages": host.get("stages", DEFAULT_STAGES)}))
        print(f"ok: {label}: stages {host.get('stages', DEFAULT_STAGES)} kept, "
              f"jobs {sorted(jobs_of(merged))}")

    # The check must see a stage the host lacks.
    host = {"stages": ["build", "test"], "build-app": {"stage": "build", "script": ["make"]}}
    if not check_merged(host, include_into(host, header, body, {})):
        raise Failure("a host without the component's stage was not reported")
    print("ok: a host without the component's stage is reported")
    for bad in ({"stage": "deploy", "nope": "x"}, {"command": "rm"}, {"token_variable": "A-B"}):
        try:
            include_into({}, header, body, bad)
        except Failure:
            continue
        raise Failure(f"inputs {bad} were accepted")
    print("ok: unknown inputs, a value outside `options` and one not matching `regex` are refused")

    schema_check(merged_docs)
    print(f"ok: check-jsonschema vendor.gitlab-ci on the spec and {len(merged_docs) - 1} merged pipelines")

    # The example includes this component with inputs the spec declares.
    with open(EXAMPLE, encoding="utf-8") as f:
        example = yaml.safe_load(f)
    includes = [i for i in example.get("include", []) if isinstance(i, dict)
                and ("component" in i or "remote" in i or "local" in i)
                and "gitops-canary" in str(i.get("component") or i.get("remote") or i.get("local"))]
    if not includes:
        raise Failure(f"{EXAMPLE}: does not include the gitops-canary component")
    for inc in includes:
        merged = include_into(example, header, body, inc.get("inputs") or {})
        problems = check_merged(example, merged)
        if problems:
            raise Failure(f"{os.path.relpath(EXAMPLE, ROOT)}:\n  " + "\n  ".join(problems))
    print(f"ok: {os.path.relpath(EXAMPLE, ROOT)} includes the component and keeps its stages")


if __name__ == "__main__":
    try:
        main()
    except Failure as e:
        print(f"check-gitlab-component: {e}", file=sys.stderr)
        sys.exit(1)
