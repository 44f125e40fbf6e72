"""`rnnslim recipes` ends with a footer that reads the same on every machine: the built-in's
package-relative path (a path that exists in the installed package), never this checkout's folder."""

import re
from pathlib import Path

from typer.testing import CliRunner

import rnnslim
from rnnslim.cli import app


def test_recipes_footer_names_a_package_relative_path_that_exists():
    out = CliRunner().invoke(app, ["recipes"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    footer = " ".join(out.stdout.split()[-40:])
    package_dir = str(Path(rnnslim.__file__).resolve().parent)
    assert package_dir not in out.stdout and "/src/" not in footer
    relative = re.search(r"\((rnnslim/recipes/[\w.-]+\.yaml)\)", footer)
    assert relative is not None, footer
    assert (Path(package_dir).parent / relative.group(1)).is_file()
