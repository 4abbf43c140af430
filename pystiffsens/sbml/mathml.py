"""SBML math (libsbml ``ASTNode`` trees) to sympy expressions.

The tree is walked node by node, so SBML ids never meet sympy's own names (``E``, ``I``,
``S``, ``beta``, ``lambda`` are ordinary ids here). The meaning of each MathML element follows
SBML L3V2 core Sect. 3.4 (the MathML subset): ``log`` without ``logbase`` is base 10,
``piecewise`` without ``otherwise`` is undefined (NaN here), ``rem`` and ``quotient`` round
towards zero, the ``time`` csymbol is the simulation time and ``avogadro`` is 6.02214179e23.
Truth values used as numbers are 1 and 0, numbers used as truth values are true where
non-zero. ``delay``, ``rateOf``, ``factorial`` and lambda expressions outside function
definitions are refused.

Infix formulas (PEtab observables, :meth:`pystiffsens.sbml.Model.compile`) are parsed with
libsbml's SBML L3 infix parser, with one change: ``log(x)`` is the natural logarithm, as in
PEtab (libsbml's default reads it as ``log10``); ``log10``, ``log2`` and ``ln`` are explicit.
"""

from __future__ import annotations

from collections.abc import Callable

import libsbml
import sympy
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom, BooleanFunction

from .errors import not_supported

#: The simulation time in sympy expressions (a name no SBML id can take).
TIME = sympy.Symbol("@time")
#: Avogadro's constant as SBML L3 defines it (L3V2 core, Sect. 3.4).
AVOGADRO = 6.02214179e23

_UNARY = {
    libsbml.AST_FUNCTION_ABS: sympy.Abs,
    libsbml.AST_FUNCTION_EXP: sympy.exp,
    libsbml.AST_FUNCTION_LN: sympy.log,
    libsbml.AST_FUNCTION_CEILING: sympy.ceiling,
    libsbml.AST_FUNCTION_FLOOR: sympy.floor,
    libsbml.AST_FUNCTION_SIN: sympy.sin,
    libsbml.AST_FUNCTION_COS: sympy.cos,
    libsbml.AST_FUNCTION_TAN: sympy.tan,
    libsbml.AST_FUNCTION_SEC: lambda x: 1 / sympy.cos(x),
    libsbml.AST_FUNCTION_CSC: lambda x: 1 / sympy.sin(x),
    libsbml.AST_FUNCTION_COT: lambda x: 1 / sympy.tan(x),
    libsbml.AST_FUNCTION_SINH: sympy.sinh,
    libsbml.AST_FUNCTION_COSH: sympy.cosh,
    libsbml.AST_FUNCTION_TANH: sympy.tanh,
    libsbml.AST_FUNCTION_SECH: lambda x: 1 / sympy.cosh(x),
    libsbml.AST_FUNCTION_CSCH: lambda x: 1 / sympy.sinh(x),
    libsbml.AST_FUNCTION_COTH: lambda x: 1 / sympy.tanh(x),
    libsbml.AST_FUNCTION_ARCSIN: sympy.asin,
    libsbml.AST_FUNCTION_ARCCOS: sympy.acos,
    libsbml.AST_FUNCTION_ARCTAN: sympy.atan,
    libsbml.AST_FUNCTION_ARCSEC: lambda x: sympy.acos(1 / x),
    libsbml.AST_FUNCTION_ARCCSC: lambda x: sympy.asin(1 / x),
    libsbml.AST_FUNCTION_ARCCOT: lambda x: sympy.atan(1 / x),
    libsbml.AST_FUNCTION_ARCSINH: sympy.asinh,
    libsbml.AST_FUNCTION_ARCCOSH: sympy.acosh,
    libsbml.AST_FUNCTION_ARCTANH: sympy.atanh,
    libsbml.AST_FUNCTION_ARCSECH: lambda x: sympy.acosh(1 / x),
    libsbml.AST_FUNCTION_ARCCSCH: lambda x: sympy.asinh(1 / x),
    libsbml.AST_FUNCTION_ARCCOTH: lambda x: sympy.atanh(1 / x),
    libsbml.AST_LOGICAL_NOT: sympy.Not,
}
_RELATIONAL = {
    libsbml.AST_RELATIONAL_LT: sympy.Lt,
    libsbml.AST_RELATIONAL_LEQ: sympy.Le,
    libsbml.AST_RELATIONAL_GT: sympy.Gt,
    libsbml.AST_RELATIONAL_GEQ: sympy.Ge,
    libsbml.AST_RELATIONAL_EQ: sympy.Eq,
    libsbml.AST_RELATIONAL_NEQ: sympy.Ne,
}
_NARY = {
    libsbml.AST_PLUS: sympy.Add,
    libsbml.AST_TIMES: sympy.Mul,
    libsbml.AST_LOGICAL_AND: sympy.And,
    libsbml.AST_LOGICAL_OR: sympy.Or,
    libsbml.AST_LOGICAL_XOR: sympy.Xor,
    libsbml.AST_FUNCTION_MAX: sympy.Max,
    libsbml.AST_FUNCTION_MIN: sympy.Min,
}
#: Functions the infix parser leaves generic, by name (PEtab's ``log2``, ``sign``).
_GENERIC = {"log2": lambda x: sympy.log(x, 2), "sign": sympy.sign}
_LOGICAL = (
    libsbml.AST_LOGICAL_AND,
    libsbml.AST_LOGICAL_OR,
    libsbml.AST_LOGICAL_XOR,
    libsbml.AST_LOGICAL_NOT,
    libsbml.AST_LOGICAL_IMPLIES,
)
_REFUSED = {
    libsbml.AST_FUNCTION_DELAY: "the delay csymbol",
    libsbml.AST_FUNCTION_RATE_OF: "the rateOf csymbol",
    libsbml.AST_CSYMBOL_FUNCTION: "a csymbol function",
    libsbml.AST_FUNCTION_FACTORIAL: "factorial",
    libsbml.AST_LAMBDA: "a lambda expression outside a function definition",
}


def number(value: float) -> sympy.Expr:
    """A float as a sympy number printed with 17 digits, so that it reaches JAX unrounded."""
    if value != value:
        return sympy.nan
    if value in (float("inf"), float("-inf")):
        return sympy.oo if value > 0 else -sympy.oo
    return sympy.Float(value, 17)


def _is_boolean(x) -> bool:
    return isinstance(x, (Relational, BooleanFunction, BooleanAtom))


def _as_boolean(x):
    """A number where a truth value is expected is true where it is non-zero."""
    return x if _is_boolean(x) else sympy.Ne(x, 0)


def _as_number(x):
    """A truth value where a number is expected is 1 or 0."""
    return sympy.Piecewise((1, x), (0, True)) if _is_boolean(x) else x


def to_sympy(ast: libsbml.ASTNode, resolve: Callable[[str], sympy.Expr], where: str, source: str) -> sympy.Basic:
    """The sympy expression of ``ast``.

    ``resolve(name)`` gives the expression for an identifier (it raises for unknown ones);
    ``where`` ("the kinetic law of reaction 'r1'") and ``source`` (the file) go into errors.
    """

    def walk(node: libsbml.ASTNode) -> sympy.Basic:
        kind = node.getType()
        args = [walk(node.getChild(i)) for i in range(node.getNumChildren())] if kind not in _REFUSED else []
        if kind in _LOGICAL:
            args = [_as_boolean(a) for a in args]
        elif kind == libsbml.AST_FUNCTION_PIECEWISE:
            args = [_as_boolean(a) if i % 2 else _as_number(a) for i, a in enumerate(args)]
        else:
            args = [_as_number(a) for a in args]
        if kind == libsbml.AST_INTEGER:
            return sympy.Integer(node.getInteger())
        if kind in (libsbml.AST_REAL, libsbml.AST_REAL_E):
            return number(node.getReal())
        if kind == libsbml.AST_RATIONAL:
            return sympy.Rational(node.getNumerator(), node.getDenominator())
        if kind == libsbml.AST_NAME:
            return resolve(node.getName())
        if kind == libsbml.AST_NAME_TIME:
            return TIME
        if kind == libsbml.AST_NAME_AVOGADRO:
            return number(AVOGADRO)
        if kind == libsbml.AST_CONSTANT_E:
            return sympy.E
        if kind == libsbml.AST_CONSTANT_PI:
            return sympy.pi
        if kind in (libsbml.AST_CONSTANT_TRUE, libsbml.AST_CONSTANT_FALSE):
            return sympy.true if kind == libsbml.AST_CONSTANT_TRUE else sympy.false
        if kind in _NARY:
            return _NARY[kind](*args) if args else _NARY[kind].identity
        if kind == libsbml.AST_MINUS:
            return -args[0] if len(args) == 1 else args[0] - args[1]
        if kind == libsbml.AST_DIVIDE:
            return args[0] / args[1]
        if kind in (libsbml.AST_POWER, libsbml.AST_FUNCTION_POWER):
            return sympy.Pow(args[0], args[1])
        if kind == libsbml.AST_FUNCTION_ROOT:  # root(degree, x); the degree child is present when set
            return sympy.Pow(args[-1], 1 / args[0]) if len(args) == 2 else sympy.sqrt(args[0])
        if kind == libsbml.AST_FUNCTION_LOG:  # log(base, x); no base means base 10
            return sympy.log(args[-1], args[0] if len(args) == 2 else 10)
        if kind in _UNARY and len(args) == 1:
            return _UNARY[kind](args[0])
        if kind in _RELATIONAL:  # n-ary relations hold pairwise: lt(a, b, c) is a < b < c
            pairs = [_RELATIONAL[kind](a, b) for a, b in zip(args, args[1:])]
            return sympy.And(*pairs) if len(pairs) > 1 else pairs[0]
        if kind == libsbml.AST_LOGICAL_IMPLIES:
            return sympy.Implies(args[0], args[1])
        if kind in (libsbml.AST_FUNCTION_QUOTIENT, libsbml.AST_FUNCTION_REM):
            ratio = args[0] / args[1]
            quotient = sympy.sign(ratio) * sympy.floor(sympy.Abs(ratio))  # rounded towards zero
            return quotient if kind == libsbml.AST_FUNCTION_QUOTIENT else args[0] - args[1] * quotient
        if kind == libsbml.AST_FUNCTION_PIECEWISE:
            pieces = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
            otherwise = args[-1] if len(args) % 2 else sympy.nan
            return sympy.Piecewise(*pieces, (otherwise, True))
        if kind == libsbml.AST_FUNCTION and node.getName() in _GENERIC and len(args) == 1:
            return _GENERIC[node.getName()](args[0])
        if kind == libsbml.AST_FUNCTION:
            raise ValueError(
                f"{source}: {where} calls the unknown function {node.getName()!r}; functions: SBML's "
                f"MathML functions, the model's function definitions and {sorted(_GENERIC)}."
            )
        construct = _REFUSED.get(kind, f"the MathML element {node.getName() or libsbml.formulaToL3String(node)!r}")
        raise not_supported(construct, where, source)

    return walk(ast)


def parse_infix(formula: str, source: str) -> libsbml.ASTNode:
    """The libsbml tree of an SBML L3 infix formula, with ``log(x)`` the natural logarithm (PEtab's reading).

    A two-argument ``log`` is refused: SBML's infix ``log(base, x)`` and PEtab's ``log(x, base)``
    disagree on the order, so the formula must say ``log10``, ``log2``, ``ln`` or ``log(x)``.
    """
    settings = libsbml.L3ParserSettings()
    settings.setParseLog(libsbml.L3P_PARSE_LOG_AS_LN)
    ast = libsbml.parseL3FormulaWithSettings(formula, settings)
    if ast is None:
        raise ValueError(f"{source}: cannot parse the formula {formula!r}: {libsbml.getLastParseL3Error().strip()}")
    stack = [ast]
    while stack:
        node = stack.pop()
        if node.getType() == libsbml.AST_FUNCTION_LOG and node.getName() == "log" and node.getNumChildren() == 2:
            raise ValueError(
                f"{source}: the formula {formula!r} has a two-argument log, whose argument order differs "
                "between SBML (base first) and PEtab (base last); write log10(x), log2(x), ln(x) or log(x)."
            )
        stack.extend(node.getChild(i) for i in range(node.getNumChildren()))
    return ast
