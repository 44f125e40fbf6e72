"""Model names become short ASCII C identifiers in every C export (issue 19 s5: "İstanbul" gave a
non-NFC identifier error, a 5,000-character name `OSError: File name too long`)."""

from __future__ import annotations

import re
import subprocess

import pytest
from compilers import needs_cc
from hypothesis import given, settings
from hypothesis import strategies as st
from int8_models import integer_model

from rnnslim.export.c_float import export_c_float
from rnnslim.export.c_names import MAX_LENGTH, c_identifier
from rnnslim.export.c_source import export_c
from rnnslim.models.sequence import InputKind, LayerShape, ModelSpec, SequenceModel
from rnnslim.runtime import read_manifest
from rnnslim.runtime.build import find_compiler

IDENT = re.compile(rf"[a-z_][a-z0-9_]{{0,{MAX_LENGTH - 1}}}")
C_KEYWORDS = {"int", "char", "static", "return", "while", "struct", "typedef", "void", "if", "for", "bool"}


@pytest.mark.parametrize("name, ident", [
    ("charlstm-512x2", "charlstm_512x2"), ("My Model-1", "my_model_1"), ("2net", "m_2net"), ("", "model"),
    ("İstanbul", "istanbul"), ("Ångström café", "angstrom_cafe"), ("ﬁlter", "filter"),  # NFKD: accents, ligatures
    ("日本語", "model"), ("  --  ", "model"),
    ("int", "int_model"), ("while", "while_model"), ("string", "string_model"), ("stdio", "stdio_model"),
    ("check_main", "check_main_model"), ("rnnslim_core", "rnnslim_core_model"),
    ("rs_core", "m_rs_core"), ("RS", "m_rs"), ("rsf_model", "m_rsf_model"), ("rsfoo", "rsfoo"),
])
def test_examples(name, ident):
    assert c_identifier(name) == ident


def test_long_names_are_cut_with_a_hash_of_the_whole_name():
    a, b = "x" * 5000, "x" * 4999 + "y"
    ca, cb = c_identifier(a), c_identifier(b)
    assert len(ca) == len(cb) == MAX_LENGTH and ca != cb and ca.startswith("x" * 30)
    assert c_identifier("a" * MAX_LENGTH) == "a" * MAX_LENGTH  # at the limit: unchanged
    assert c_identifier("rs_" + "z" * 100).startswith("m_rs_")  # the prefix survives the cut
    with pytest.raises(TypeError, match="str"):
        c_identifier(b"bytes")


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_str_gives_a_plain_identifier(name):
    ident = c_identifier(name)
    assert IDENT.fullmatch(ident), ident
    assert ident not in C_KEYWORDS and not ident.startswith(("rs_", "rsf_"))
    assert c_identifier(name) == ident  # deterministic


@needs_cc
@settings(max_examples=4, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=40))
def test_identifiers_compile_as_the_export_uses_them(tmp_path_factory, names):
    """Every symbol an export derives from the name (NAME_state, NAME_init, NAME_OUTPUTS, NAME.h)
    compiles under -std=c99 -pedantic -Werror, beside the C library's headers."""
    tmp = tmp_path_factory.mktemp("names")
    idents = sorted({c_identifier(n) for n in names})
    for i in idents:
        (tmp / f"{i}.h").write_text(f"#ifndef {i.upper()}_H\n#define {i.upper()}_H\n#define {i.upper()}_OUTPUTS 1\n"
                                    f"typedef struct {{ int v[{i.upper()}_OUTPUTS]; }} {i}_state;\n"
                                    f"int {i}_init(void);\n#endif\n")
    src = "#include <stdio.h>\n#include <string.h>\n#include <stdint.h>\n#include <math.h>\n"
    src += "".join(f'#include "{i}.h"\nint {i}_init(void) {{ {i}_state s; s.v[0] = 0; return s.v[0]; }}\n'
                   for i in idents)
    (tmp / "all.c").write_text(src)
    proc = subprocess.run([find_compiler(), "-std=c99", "-pedantic", "-Wall", "-Wextra", "-Werror", "-I", str(tmp),
                           "-c", str(tmp / "all.c"), "-o", str(tmp / "all.o")], capture_output=True, text=True)
    assert proc.returncode == 0, (idents, proc.stderr[-2000:])


@needs_cc
@pytest.mark.parametrize("name", ["İstanbul", "n" * 5000, "stdio", "🙂 model"])
def test_hostile_names_export_and_build(tmp_path, name):
    q = integer_model("gru", hidden=(16,), vocab=5, embed=3, out=2)
    facts = export_c(q, tmp_path / "c", name=name)
    ident = c_identifier(name)
    assert facts.name == read_manifest(tmp_path / "c")["name"] == ident  # the manifest records the C name
    assert sorted(p.name for p in (tmp_path / "c").iterdir() if p.suffix in (".c", ".h")) == sorted(
        [f"{ident}.c", f"{ident}.h", "rnnslim_core.h"])
    spec = ModelSpec(cell="lstm", input_kind=InputKind.EMBEDDING, input_size=5, embed_size=4,
                     layers=[LayerShape(hidden_size=8)], output_size=5)
    float_facts = export_c_float(SequenceModel(spec).eval(), tmp_path / "f", name=name)
    assert float_facts.name == ident and (tmp_path / "f" / f"{ident}.c").is_file()
    for d in (tmp_path / "c", tmp_path / "f"):  # -I the export: a model named "stdio" must not shadow <stdio.h>
        (d / "use.c").write_text(f'#include <stdio.h>\n#include "{ident}.h"\n'
                                 f"int main(void) {{ printf(\"%d\\n\", {ident.upper()}_OUTPUTS); return 0; }}\n")
        proc = subprocess.run([find_compiler(), "-std=c99", "-Wall", "-Wextra", "-Werror", "-I", str(d), "-c",
                               str(d / f"{ident}.c"), str(d / "use.c")], capture_output=True, text=True, cwd=d)
        assert proc.returncode == 0, proc.stderr[-2000:]
