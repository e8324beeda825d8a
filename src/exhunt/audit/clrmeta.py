"""What a PE file's .NET metadata says about an agent: its factory type, that type's bases, and
the native functions it imports (P/Invoke), read with dnfile.

Only the headers and the few metadata tables these facts need are read (lazily), tables
larger than any real agent's are refused, and base chains stop on loops: a hostile or
damaged file gives `errors` in plain words, never an exception or a long wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

logging.getLogger("dnfile").addHandler(logging.NullHandler())
logging.getLogger("dnfile").propagate = False

# Exchange's agent factories (Microsoft.Exchange.Data.Transport.dll). DeliveryAgentFactory is
# generic (DeliveryAgentFactory<Manager>), so metadata names it with its arity: `1.
AGENT_FACTORIES = frozenset(
    {
        "Microsoft.Exchange.Data.Transport.Smtp.SmtpReceiveAgentFactory",
        "Microsoft.Exchange.Data.Transport.Routing.RoutingAgentFactory",
        "Microsoft.Exchange.Data.Transport.Delivery.DeliveryAgentFactory",
    }
)
TRANSPORT_ASSEMBLY = "Microsoft.Exchange.Data.Transport"

MAX_ROWS = 200_000  # rows of one table; Exchange's largest assemblies have a few tens of thousands
MAX_DEPTH = 64  # bases followed inside one assembly
MAX_PINVOKES = 1000

_MACHINES = {0x14C: "x86", 0x8664: "x64", 0x1C0: "ARM", 0xAA64: "ARM64", 0x200: "IA64"}
_COM_DESCRIPTOR = 14
NOT_PE = "starts like a Windows program (MZ) but is not a valid PE file"


@dataclass
class ClrFacts:
    """The metadata facts (see AssemblyFacts for each field's meaning)."""

    is_pe: bool = False
    machine: str = ""
    is_dotnet: bool = False
    assembly_name: str = ""
    factory_found: bool = False
    factory_bases: list[str] = field(default_factory=list)
    derives_from_agent_factory: bool = False
    bases_unresolved: str = ""
    pinvokes: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class _FromDnfile(logging.Filter):
    """Drops the records dnfile logs on the root logger (about table sizes of a damaged file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "dnfile" not in record.pathname.replace("\\", "/").split("/")


_ROOT_FILTER = _FromDnfile()
_ROOT_HANDLER = logging.NullHandler()
_QUIET_LOCK = threading.Lock()
_QUIET_USERS = [0]


@contextmanager
def _quiet_root_logging() -> Iterator[None]:
    """While dnfile parses: its root-logger warnings go nowhere, and a handler on the root logger
    keeps logging.warning() from installing a stderr handler for the rest of the run."""
    root = logging.getLogger()
    with _QUIET_LOCK:
        _QUIET_USERS[0] += 1
        if _QUIET_USERS[0] == 1:
            root.addFilter(_ROOT_FILTER)
            root.addHandler(_ROOT_HANDLER)
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _QUIET_USERS[0] -= 1
            if _QUIET_USERS[0] == 0:
                root.removeFilter(_ROOT_FILTER)
                root.removeHandler(_ROOT_HANDLER)


def read_clr(data: bytes, factory: str | None) -> ClrFacts:
    """Facts from the bytes of a file; never raises."""
    with _quiet_root_logging():
        return _read_clr(data, factory)


def _read_clr(data: bytes, factory: str | None) -> ClrFacts:
    facts = ClrFacts()
    if data[:2] != b"MZ":
        return facts
    if not _has_pe_signature(data):  # checked here: pefile's failure path runs a full gc.collect()
        facts.errors.append(NOT_PE)
        return facts
    try:
        import dnfile
        import pefile
    except ImportError as exc:  # pragma: no cover - both are dependencies
        facts.errors.append(f".NET metadata not read: {exc.name} is not installed")
        return facts
    try:
        pe = dnfile.dnPE(data=data, fast_load=True, clr_lazy_load=True)
    except pefile.PEFormatError:
        facts.errors.append(NOT_PE)
        return facts
    except Exception as exc:
        facts.errors.append(f"the PE headers could not be read ({type(exc).__name__})")
        return facts
    facts.is_pe = True
    try:
        machine = int(pe.FILE_HEADER.Machine)
        facts.machine = _MACHINES.get(machine, f"0x{machine:04x}")
        pe.parse_data_directories(directories=[_COM_DESCRIPTOR])
        net = getattr(pe, "net", None)
        if net is None or getattr(net, "mdtables", None) is None:
            if _has_com_descriptor(pe):
                facts.errors.append("it declares .NET metadata that could not be read")
            return facts
        facts.is_dotnet = True
        _read_metadata(net.mdtables, factory, facts)
    except RecursionError:
        facts.errors.append("the .NET metadata nests too deeply to read")
    except Exception as exc:
        facts.errors.append(f"the .NET metadata could not be read ({type(exc).__name__})")
    # no pe.close(): the bytes are ours (no file or mmap to release) and close() runs gc.collect()
    return facts


def _has_pe_signature(data: bytes) -> bool:
    if len(data) < 0x40:
        return False
    pe_at = int.from_bytes(data[0x3C:0x40], "little")
    return data[pe_at : pe_at + 4] == b"PE\0\0"


def _has_com_descriptor(pe: Any) -> bool:
    try:
        entry = pe.OPTIONAL_HEADER.DATA_DIRECTORY[_COM_DESCRIPTOR]
        return bool(entry.VirtualAddress)
    except (AttributeError, IndexError):
        return False


class _Tables:
    """Row access by table name with the size limit, so one huge table cannot stall a run."""

    def __init__(self, md: Any, facts: ClrFacts) -> None:
        self.md = md
        self.facts = facts
        self.refused: set[str] = set()

    def rows(self, name: str) -> list[Any]:
        table = getattr(self.md, name, None)
        if table is None:
            return []
        count = int(getattr(table, "num_rows", 0) or 0)
        if count > MAX_ROWS:
            if name not in self.refused:
                self.refused.add(name)
                self.facts.errors.append(f"the {name} table has {count} rows, more than {MAX_ROWS}: not read")
            return []
        return list(table.rows or [])


def _text(value: Any) -> str:
    """A metadata string (dnfile heap item or str) as text, capped."""
    if value is None:
        return ""
    inner = getattr(value, "value", value)
    if isinstance(inner, bytes):
        inner = inner.decode("utf-8", "replace")
    return str(inner)[:1024]


def _read_metadata(md: Any, factory: str | None, facts: ClrFacts) -> None:
    tables = _Tables(md, facts)
    assembly = tables.rows("Assembly")
    if assembly:
        facts.assembly_name = _text(assembly[0].Name)
    names = _Names(tables)
    _read_pinvokes(tables, facts)
    wanted = normalize_type_name(factory) if factory else ""
    if not wanted:
        return
    found = [index for index, name in enumerate(names.typedef_names, start=1) if name == wanted]
    if not found:
        folded = [n for n in names.typedef_names if n.lower() == wanted.lower()]
        if folded:
            facts.notes.append(f"no type {wanted} (names are case-sensitive), but {folded[0]} exists")
        return
    facts.factory_found = True
    _walk_bases(tables, names, found[0], facts)


def normalize_type_name(name: str) -> str:
    """A factory as agents.config writes it, reduced to the metadata's full name form."""
    text = name.strip().split(",", 1)[0].strip()
    return text.replace("/", "+")


class _Names:
    """Full names of the TypeDefs and TypeRefs (namespace.name, nested types with '+')."""

    def __init__(self, tables: _Tables) -> None:
        self.tables = tables
        self.typedefs = tables.rows("TypeDef")
        self.typerefs = tables.rows("TypeRef")
        enclosing: dict[int, int] = {}
        for row in tables.rows("NestedClass"):
            nested, outer = _index(row.NestedClass), _index(row.EnclosingClass)
            if nested and outer:
                enclosing[nested] = outer
        self.typedef_names = [self._typedef_name(i, enclosing, 0) for i in range(1, len(self.typedefs) + 1)]
        self._typeref_cache: dict[int, str] = {}

    def _typedef_name(self, index: int, enclosing: dict[int, int], depth: int) -> str:
        row = self.typedefs[index - 1]
        name = _text(row.TypeName)
        outer = enclosing.get(index)
        if outer and depth < 16 and 0 < outer <= len(self.typedefs) and outer != index:
            return self._typedef_name(outer, enclosing, depth + 1) + "+" + name
        namespace = _text(row.TypeNamespace)
        return f"{namespace}.{name}" if namespace else name

    def typeref_name(self, index: int, depth: int = 0) -> str:
        if index in self._typeref_cache:
            return self._typeref_cache[index]
        if not 0 < index <= len(self.typerefs):
            return f"<TypeRef {index}>"
        row = self.typerefs[index - 1]
        name = _text(row.TypeName)
        scope = row.ResolutionScope
        if _table(scope) == "TypeRef" and depth < 16 and _index(scope) != index:
            full = self.typeref_name(_index(scope), depth + 1) + "+" + name
        else:
            namespace = _text(row.TypeNamespace)
            full = f"{namespace}.{name}" if namespace else name
        self._typeref_cache[index] = full
        return full

    def typeref_assembly(self, index: int) -> str:
        """The assembly a TypeRef resolves to (outermost scope); "" when not an assembly."""
        for _ in range(16):
            if not 0 < index <= len(self.typerefs):
                return ""
            scope = self.typerefs[index - 1].ResolutionScope
            kind = _table(scope)
            if kind == "TypeRef":
                index = _index(scope)
                continue
            if kind == "AssemblyRef":
                row = getattr(scope, "row", None)
                return _text(getattr(row, "Name", "")) if row is not None else ""
            return ""
        return ""


def _table(coded: Any) -> str:
    table = getattr(coded, "table", None)
    return str(getattr(table, "name", "")) if table is not None else ""


def _index(coded: Any) -> int:
    try:
        return int(getattr(coded, "row_index", 0) or 0)
    except (TypeError, ValueError):
        return 0


def _strip_arity(name: str) -> str:
    head, sep, tail = name.rpartition("`")
    return head if sep and tail.isdigit() else name


def _walk_bases(tables: _Tables, names: _Names, start: int, facts: ClrFacts) -> None:
    """Follow `extends` from the factory TypeDef through this assembly's TypeDefs."""
    typespecs = tables.rows("TypeSpec")
    seen = {("TypeDef", start)}
    current = ("TypeDef", start)
    for _ in range(MAX_DEPTH):
        row = names.typedefs[current[1] - 1]
        kind, index = _table(row.Extends), _index(row.Extends)
        if not kind or index == 0:
            return  # System.Object itself, an interface, or <Module>: no base
        if kind == "TypeSpec":
            resolved = _generic_type(typespecs, index)
            if resolved is None:
                facts.notes.append("a base type is a type specification that is not a generic class")
                return
            kind, index = resolved
        if kind == "TypeDef":
            if not 0 < index <= len(names.typedefs):
                facts.errors.append(f"a base type points at type {index}, which does not exist")
                return
            name = names.typedef_names[index - 1]
            facts.factory_bases.append(name)
            if _strip_arity(name) in AGENT_FACTORIES:
                facts.notes.append(f"its base {name} is defined in this assembly itself, not taken from Exchange")
            if ("TypeDef", index) in seen:
                facts.errors.append("the base types form a loop")
                return
            seen.add(("TypeDef", index))
            current = ("TypeDef", index)
            continue
        if kind == "TypeRef":
            name = names.typeref_name(index)
            facts.factory_bases.append(name)
            origin = names.typeref_assembly(index)
            if _strip_arity(name) in AGENT_FACTORIES:
                if origin.lower() == TRANSPORT_ASSEMBLY.lower():
                    facts.derives_from_agent_factory = True
                else:
                    where = origin or "an unnamed scope"
                    facts.notes.append(f"its base {name} is taken from {where}, not {TRANSPORT_ASSEMBLY}")
            elif name != "System.Object":
                facts.bases_unresolved = name
                where = origin or "another module"
                facts.notes.append(f"its base {name} is defined in {where}: the chain goes on there")
            return
        facts.errors.append(f"a base type points into the {kind} table")
        return
    facts.errors.append(f"more than {MAX_DEPTH} base types: not followed further")


def _generic_type(typespecs: list[Any], index: int) -> tuple[str, int] | None:
    """The generic type a TypeSpec instantiates (GENERICINST CLASS TypeDefOrRef ...)."""
    if not 0 < index <= len(typespecs):
        return None
    blob = getattr(typespecs[index - 1].Signature, "value", None)
    if not isinstance(blob, bytes | bytearray) or len(blob) < 3:
        return None
    if blob[0] != 0x15 or blob[1] not in (0x11, 0x12):  # ELEMENT_TYPE_GENERICINST, VALUETYPE/CLASS
        return None
    coded = _compressed(blob, 2)
    if coded is None:
        return None
    tag, row = coded & 3, coded >> 2
    return ({0: "TypeDef", 1: "TypeRef", 2: "TypeSpec"}.get(tag, "?"), row)


def _compressed(blob: bytes | bytearray, at: int) -> int | None:
    """ECMA-335 II.23.2 compressed unsigned integer at `at`."""
    if at >= len(blob):
        return None
    first = blob[at]
    if first & 0x80 == 0:
        return first
    if first & 0xC0 == 0x80 and at + 1 < len(blob):
        return ((first & 0x3F) << 8) | blob[at + 1]
    if first & 0xE0 == 0xC0 and at + 3 < len(blob):
        return ((first & 0x1F) << 24) | (blob[at + 1] << 16) | (blob[at + 2] << 8) | blob[at + 3]
    return None


def _read_pinvokes(tables: _Tables, facts: ClrFacts) -> None:
    modules = tables.rows("ModuleRef")
    seen: set[tuple[str, str]] = set()
    for row in tables.rows("ImplMap"):
        index = _index(row.ImportScope)
        dll = _text(modules[index - 1].Name) if 0 < index <= len(modules) else f"<ModuleRef {index}>"
        pair = (dll, _text(row.ImportName))
        if pair in seen:
            continue
        seen.add(pair)
        facts.pinvokes.append(pair)
        if len(facts.pinvokes) >= MAX_PINVOKES:
            facts.notes.append(f"more than {MAX_PINVOKES} native imports: the rest not listed")
            return
