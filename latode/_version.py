"""latode's version, in a module of its own: the subpackages read it from here, since
importing the package root from inside them would make a cycle (the root imports them)."""

__version__ = "0.1.0"
