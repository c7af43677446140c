import importlib.util
import os

TOOLS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools")


def load_tool(name: str):
    """A tools/NAME.py script as a module (the scripts are not a package)."""
    spec = importlib.util.spec_from_file_location(f"vidpool_tool_{name}", os.path.join(TOOLS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
