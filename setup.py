"""Build step pyproject.toml cannot express: the wheel carries the project's models/,
resources/ and samples/ inside the package (fasdesk/_data/, where
fasdesk.core.io.paths.app_root finds them), so an installed fasdesk works offline.
Of models/ only the manifest, its notes and the files the manifest marks "bundled"."""
import json
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def data_files() -> list[Path]:
    """The project files the package carries, relative to the project root."""
    manifest = json.loads((ROOT / "models" / "manifest.json").read_text(encoding="utf-8"))
    files = [Path("models", m["file"]) for m in manifest["models"] if m.get("bundled")]
    files += [p.relative_to(ROOT) for p in (ROOT / "models").iterdir()
              if p.name == "manifest.json" or p.suffix == ".md" or p.name.startswith("LICENSE")]
    for folder in ("resources", "samples"):
        files += [p.relative_to(ROOT) for p in sorted((ROOT / folder).rglob("*")) if p.is_file()]
    return files


class BuildPyWithData(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the clone
            return
        target = Path(self.build_lib) / "fasdesk" / "_data"
        for rel in data_files():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / rel, target / rel)


setup(cmdclass={"build_py": BuildPyWithData})
