#!/usr/bin/env python3
"""Type every SQL statement toxscore sends to BigQuery, against the real
column types of its tables, with sqlglot's BigQuery dialect.

Why: the tests run against a BigQuery emulator (bqemulator, on DuckDB) that
silently compares INT64 with STRING, where real BigQuery refuses the query
("No matching signature for operator ="), and that silently drops insertAll
fields the table lacks. This checker refuses what BigQuery would refuse.

Usage:

    python scripts/bq_typecheck.py LOG.json

LOG.json is one JSON object:

    {"schemas":    {"project.dataset.table": {"column": "INT64", ...}, ...},
     "statements": [{"sql": "...",
                     "parameters": [{"name": "ids", "type": "INT64",
                                     "array": true}]}, ...],
     "inserts":    [{"table": "project.dataset.table",
                     "fields": ["status_id", ...]}, ...]}

The SQL names tables `dataset.table` or `project.dataset.table`; a table is
found by its full name, or by `dataset.table` when only one project has it.

It reports, naming `statements[i]` or `inserts[i]`, an excerpt and the types:
- `=`, `<>`/`!=`, `<`, `<=`, `>`, `>=`, `IS [NOT] DISTINCT FROM`, BETWEEN and
  `CASE x WHEN ...` between a string and a numeric type (INT64, FLOAT64,
  NUMERIC, BIGNUMERIC), wherever they stand (WHERE, JOIN ... ON, HAVING,
  QUALIFY, subqueries, a MERGE's ON and WHEN conditions);
- `x IN (...)`, `x IN (SELECT ...)` and `x IN UNNEST(...)` whose left side and
  elements mix string and numeric;
- a value written into a column (INSERT ... SELECT / VALUES by position,
  UPDATE ... SET, MERGE's UPDATE SET and INSERT) that is string where the
  column is numeric or the reverse, and an INSERT whose column and value
  counts differ;
- an insert (DML column lists and the "inserts" entries, insertAll rows)
  naming a field the table does not have;
- a reference to a table or a column the schemas lack (qualify raises), an
  undeclared parameter, and SQL sqlglot cannot parse or crashes on.

Expression types come from `sqlglot.optimizer.qualify.qualify` and
`sqlglot.optimizer.annotate_types.annotate_types`. A comparison with a side
sqlglot types as UNKNOWN is not reported, only counted ("untyped").

CREATE TABLE (column list) and CREATE TABLE ... AS SELECT add the table to
the schemas when the log lacks it (its query is typed like a SELECT); ALTER
TABLE ... ADD COLUMN adds a column the log lacks; nothing else in them is
typed. DROP and other statements are skipped.

Exit status: 0 clean (one summary line), 1 with one line per error on stdout
(and a summary on stderr), 2 when the log cannot be read (or sqlglot is not
installed). Needs Python 3.9+ and sqlglot (pinned: 30.11.0).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

try:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError
    from sqlglot.optimizer.annotate_types import annotate_types
    from sqlglot.optimizer.qualify import qualify
    from sqlglot.schema import MappingSchema
except ImportError:  # pragma: no cover - depends on the environment
    print("bq_typecheck: sqlglot is not installed (pip install sqlglot==30.11.0)", file=sys.stderr)
    sys.exit(2)

DIALECT = "bigquery"
EXCERPT_CHARS = 100

# Binary operators whose two sides BigQuery requires to be comparable.
COMPARISONS = (exp.EQ, exp.NEQ, exp.LT, exp.LTE, exp.GT, exp.GTE, exp.NullSafeEQ, exp.NullSafeNEQ)
STRING_TYPES = exp.DataType.TEXT_TYPES
NUMERIC_TYPES = exp.DataType.NUMERIC_TYPES

# A table's full name and its columns (lower-cased names, in order) to types.
Columns = Dict[str, exp.DataType]


class LogError(Exception):
    """The log is not a readable JSON object of the documented shape."""


# ---------------------------------------------------------------------------
# Types


def type_class(data_type: Optional[exp.DataType]) -> str:
    """'string', 'numeric', 'unknown' or 'other' (NULL, BOOL, TIMESTAMP...)."""
    if data_type is None or data_type.this == exp.DataType.Type.UNKNOWN:
        return "unknown"
    if data_type.this in STRING_TYPES:
        return "string"
    if data_type.this in NUMERIC_TYPES:
        return "numeric"
    return "other"


def type_name(data_type: Optional[exp.DataType]) -> str:
    return "UNKNOWN" if data_type is None else data_type.sql(DIALECT)


def mismatch(left: Optional[exp.DataType], right: Optional[exp.DataType]) -> Optional[bool]:
    """True when one side is string and the other numeric, None when a side
    is untyped, False otherwise."""
    classes = {type_class(left), type_class(right)}
    if "unknown" in classes:
        return None
    return classes == {"string", "numeric"}


def build_type(text: str) -> exp.DataType:
    return exp.DataType.build(text, dialect=DIALECT)


def excerpt(node: exp.Expression) -> str:
    text = re.sub(r"\s+", " ", node.sql(DIALECT))
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 3] + "..."


# ---------------------------------------------------------------------------
# The catalog of tables


@dataclass
class Catalog:
    """The tables of the log, by full name `project.dataset.table`."""

    tables: Dict[str, Columns] = field(default_factory=dict)

    def add(self, full_name: str, columns: Columns) -> None:
        self.tables[full_name] = columns

    def find(self, parts: List[str]) -> Tuple[Optional[str], str]:
        """The full name of the table named by `parts` ([project,] dataset,
        table), or None and why not."""
        name = ".".join(parts)
        if len(parts) == 3:
            return (name, "") if name in self.tables else (None, f"unknown table `{name}`")
        if len(parts) != 2:
            return None, f"table `{name}` is not qualified with a dataset"
        matches = [full for full in self.tables if full.split(".", 1)[1] == name]
        if len(matches) == 1:
            return matches[0], ""
        if matches:
            return None, f"table `{name}` is ambiguous: {', '.join(sorted(matches))}"
        return None, f"unknown table `{name}`"

    def project_of(self, dataset: str) -> str:
        """The project a new `dataset.table` belongs to: the only one that has
        the dataset, else a placeholder."""
        projects = {full.split(".")[0] for full in self.tables if full.split(".")[1] == dataset}
        return projects.pop() if len(projects) == 1 else "_"

    def mapping_schema(self) -> MappingSchema:
        nested: Dict[str, Dict[str, Dict[str, Dict[str, str]]]] = {}
        for full_name, columns in self.tables.items():
            project, dataset, table = full_name.split(".")
            nested.setdefault(project, {}).setdefault(dataset, {})[table] = {
                column: data_type.sql(DIALECT) for column, data_type in columns.items()
            }
        return MappingSchema(nested, dialect=DIALECT)


def table_parts(table: exp.Table) -> List[str]:
    return [part.name for part in table.parts]


# ---------------------------------------------------------------------------
# Reading the log


@dataclass
class Statement:
    sql: str
    parameters: Dict[str, exp.Expression]  # name -> typed NULL to put in its place


@dataclass
class InsertAll:
    table: str
    fields: List[str]


@dataclass
class Log:
    catalog: Catalog
    statements: List[Statement]
    inserts: List[InsertAll]


def read_log(path: str) -> Log:
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except (OSError, ValueError) as error:
        raise LogError(str(error)) from error
    if not isinstance(data, dict):
        raise LogError("the log is not a JSON object")
    return Log(
        catalog=read_schemas(expect(data.get("schemas", {}), dict, "schemas")),
        statements=[read_statement(item, i) for i, item in enumerate(expect(data.get("statements", []), list, "statements"))],
        inserts=[read_insert(item, i) for i, item in enumerate(expect(data.get("inserts", []), list, "inserts"))],
    )


def expect(value, kind, where: str):
    if not isinstance(value, kind):
        raise LogError(f"{where}: expected a JSON {kind.__name__}")
    return value


def parse_type(text, where: str) -> exp.DataType:
    try:
        return build_type(expect(text, str, where))
    except (SqlglotError, ValueError) as error:
        raise LogError(f"{where}: not a BigQuery type: {text!r}") from error


def read_schemas(schemas: dict) -> Catalog:
    catalog = Catalog()
    for name, columns in schemas.items():
        parts = name.split(".")
        if len(parts) == 2:  # dataset.table: no project given
            parts.insert(0, "_")
        if len(parts) != 3 or not all(parts):
            raise LogError(f"schemas: {name!r} is not project.dataset.table")
        where = f"schemas[{name!r}]"
        catalog.add(
            ".".join(parts),
            {column.lower(): parse_type(kind, f"{where}[{column!r}]") for column, kind in expect(columns, dict, where).items()},
        )
    return catalog


def read_statement(item, index: int) -> Statement:
    where = f"statements[{index}]"
    item = expect(item, dict, where)
    parameters = {}
    for j, parameter in enumerate(expect(item.get("parameters", []), list, f"{where}.parameters")):
        parameter = expect(parameter, dict, f"{where}.parameters[{j}]")
        name = expect(parameter.get("name"), str, f"{where}.parameters[{j}].name")
        parameters[name.lower()] = typed_null(parameter, f"{where}.parameters[{j}]")
    return Statement(sql=expect(item.get("sql"), str, f"{where}.sql"), parameters=parameters)


def typed_null(parameter: dict, where: str) -> exp.Expression:
    """`CAST(NULL AS T)`, or `[CAST(NULL AS T)]` for an array parameter: a
    value sqlglot types as the parameter's type."""
    value = exp.cast(exp.null(), parse_type(parameter.get("type"), f"{where}.type"))
    return exp.Array(expressions=[value]) if parameter.get("array") else value


def read_insert(item, index: int) -> InsertAll:
    where = f"inserts[{index}]"
    item = expect(item, dict, where)
    fields = expect(item.get("fields"), list, f"{where}.fields")
    return InsertAll(
        table=expect(item.get("table"), str, f"{where}.table"),
        fields=[expect(name, str, f"{where}.fields") for name in fields],
    )


# ---------------------------------------------------------------------------
# Checking


@dataclass
class Checker:
    catalog: Catalog
    errors: List[str] = field(default_factory=list)
    untyped: int = 0

    # -- reporting

    def compare(self, where: str, what: str, node: exp.Expression, left, right) -> None:
        """Report `node` if `left` and `right` mix string and numeric."""
        result = mismatch(left, right)
        if result is None:
            self.untyped += 1
        elif result:
            self.errors.append(f"{where}: {what} {excerpt(node)}: {type_name(left)} vs {type_name(right)}")

    def fail(self, where: str, message: str) -> None:
        self.errors.append(f"{where}: {message}")

    # -- insertAll

    def check_insert_all(self, index: int, insert: InsertAll) -> None:
        where = f"inserts[{index}]"
        full_name, why = self.catalog.find(insert.table.split("."))
        if full_name is None:
            self.fail(where, why)
            return
        self.check_fields_exist(where, full_name, insert.fields)

    def check_fields_exist(self, where: str, full_name: str, fields: List[str]) -> None:
        columns = self.catalog.tables[full_name]
        for name in fields:
            if name.lower() not in columns:
                self.fail(where, f"table `{full_name}` has no column `{name}`")

    # -- statements

    def check_statement(self, index: int, statement: Statement) -> None:
        where = f"statements[{index}]"
        try:
            trees = sqlglot.parse(statement.sql, dialect=DIALECT)
        except SqlglotError as error:
            self.fail(where, f"cannot parse: {first_line(error)}")
            return
        for tree in trees:
            if tree is None:
                continue
            if not substitute_parameters(tree, statement.parameters, lambda name: self.fail(where, f"undeclared parameter @{name}")):
                continue
            try:
                self.check_tree(where, tree)
            except SqlglotError as error:
                # qualify raises for a column no table in scope has (real
                # BigQuery refuses the statement too).
                self.fail(where, f"{first_line(error)} in {excerpt(tree)}")
            except Exception as error:  # a sqlglot bug: say so, rather than pass the statement
                self.fail(where, f"sqlglot could not type it ({type(error).__name__}: {first_line(error)}): {excerpt(tree)}")

    def check_tree(self, where: str, tree: exp.Expression) -> None:
        if isinstance(tree, exp.Create):
            self.check_create(where, tree)
        elif isinstance(tree, exp.Alter):
            self.apply_alter(tree)
        elif isinstance(tree, exp.Query):
            if self.resolve_tables(where, tree):
                self.check_comparisons(where, self.typed(tree))
        elif isinstance(tree, exp.Insert):
            self.check_insert(where, tree)
        elif isinstance(tree, exp.Update):
            self.check_update(where, tree)
        elif isinstance(tree, exp.Merge):
            self.check_merge(where, tree)
        elif isinstance(tree, exp.Delete):
            self.check_delete(where, tree)
        # Anything else (DROP, scripting, transactions) has nothing to type.

    def typed(self, tree: exp.Expression) -> exp.Expression:
        """`tree` qualified (raises on unknown columns) and annotated with
        types."""
        schema = self.catalog.mapping_schema()
        tree = qualify(tree, schema=schema, dialect=DIALECT, identify=False)
        return annotate_types(tree, schema=schema, dialect=DIALECT)

    def resolve_tables(self, where: str, tree: exp.Expression) -> bool:
        """Rewrite every table `tree` reads to its full name (so that the
        schema finds `dataset.table` too); False after reporting one it
        cannot find."""
        ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
        found = True
        for table in list(tree.find_all(exp.Table)):
            if not table.name or (not table.args.get("db") and table.name in ctes):
                continue  # a CTE, or a table function such as UNNEST
            full_name, why = self.catalog.find(table_parts(table))
            if full_name is None:
                self.fail(where, why)
                found = False
            else:
                set_full_name(table, full_name)
        return found

    def check_comparisons(self, where: str, tree: exp.Expression) -> None:
        for node in tree.walk():
            if isinstance(node, COMPARISONS):
                self.compare(where, "comparison", node, node.this.type, node.expression.type)
            elif isinstance(node, exp.In):
                self.check_in(where, node)
            elif isinstance(node, exp.Between):
                for bound in ("low", "high"):
                    self.compare(where, "BETWEEN", node, node.this.type, node.args[bound].type)
            elif isinstance(node, exp.Case) and node.this:
                for branch in node.args.get("ifs") or []:
                    self.compare(where, "CASE", node, node.this.type, branch.this.type)

    def check_in(self, where: str, node: exp.In) -> None:
        left = node.this.type
        element_types = [element.type for element in node.expressions]
        query = node.args.get("query")
        if query is not None:
            selects = query.unnest().selects if isinstance(query, exp.Subquery) else query.selects
            element_types.append(selects[0].type if len(selects) == 1 else None)
        unnest = node.args.get("unnest")
        if unnest is not None:
            element_types.append(unnest_element_type(unnest))
        results = [mismatch(left, right) for right in element_types]
        if None in results:
            self.untyped += 1
        elif any(results):
            right = element_types[results.index(True)]
            self.errors.append(f"{where}: IN {excerpt(node)}: {type_name(left)} vs {type_name(right)}")

    def check_writes(self, where: str, full_name: str, writes: List[Tuple[str, exp.Expression]], what: str) -> None:
        """Each (column, typed value) written into table `full_name`."""
        columns = self.catalog.tables[full_name]
        for column, value in writes:
            if column.lower() in columns:
                self.compare(where, f"{what} `{full_name}`.{column} =", value.unalias(), columns[column.lower()], value.type)

    # -- INSERT

    def check_insert(self, where: str, insert: exp.Insert) -> None:
        target = insert.this.this if isinstance(insert.this, exp.Schema) else insert.this
        full_name = self.resolve_target(where, target)
        source = insert.expression
        if full_name is None or not self.resolve_tables(where, source):
            return
        if isinstance(insert.this, exp.Schema):
            names = [column.name for column in insert.this.expressions]
            self.check_fields_exist(where, full_name, names)
        else:
            names = list(self.catalog.tables[full_name])
        rows = [exp.select(*row.expressions) for row in source.expressions] if isinstance(source, exp.Values) else [source]
        for row in rows:
            typed = self.typed(row)
            self.check_comparisons(where, typed)
            values = typed.selects
            if len(values) != len(names):
                self.fail(where, f"INSERT of {len(values)} values into {len(names)} columns: {excerpt(insert)}")
                continue
            self.check_writes(where, full_name, list(zip(names, values)), "INSERT into")

    def resolve_target(self, where: str, table: exp.Table) -> Optional[str]:
        full_name, why = self.catalog.find(table_parts(table))
        if full_name is None:
            self.fail(where, why)
        else:
            set_full_name(table, full_name)
        return full_name

    # -- UPDATE, DELETE, MERGE: typed as a SELECT over the same tables.
    # sqlglot's qualify leaves the columns of an UPDATE unqualified (so
    # annotate_types types them all UNKNOWN), hence the rewrite.

    def check_update(self, where: str, update: exp.Update) -> None:
        full_name = self.resolve_target(where, update.this)
        if full_name is None:
            return
        assignments = [(assigned_column(eq), eq.expression) for eq in update.expressions]
        self.check_fields_exist(where, full_name, [column for column, _ in assignments])
        select = projecting([value for _, value in assignments]).from_(update.this.copy(), copy=False)
        for item in from_items(update.args.get("from_")):
            select = select.join(item, join_type="CROSS", copy=False)
        if update.args.get("where"):
            select = select.where(update.args["where"].this.copy(), copy=False)
        self.check_rewritten(where, full_name, select, [column for column, _ in assignments], "UPDATE SET")

    def check_delete(self, where: str, delete: exp.Delete) -> None:
        if self.resolve_target(where, delete.this) is None:
            return
        select = projecting([]).from_(delete.this.copy(), copy=False)
        if delete.args.get("where"):
            select = select.where(delete.args["where"].this.copy(), copy=False)
        if self.resolve_tables(where, select):
            self.check_comparisons(where, self.typed(select))

    def check_merge(self, where: str, merge: exp.Merge) -> None:
        """The ON condition, the WHEN conditions, and the values of WHEN ...
        UPDATE SET / INSERT (cols) VALUES, typed as
        `SELECT values, conditions FROM target JOIN source ON condition`."""
        full_name = self.resolve_target(where, merge.this)
        if full_name is None:
            return
        columns: List[str] = []
        values: List[exp.Expression] = []
        conditions: List[exp.Expression] = []
        for when in merge.args["whens"].expressions:
            if when.args.get("condition"):
                conditions.append(when.args["condition"])
            then = when.args.get("then")
            if isinstance(then, exp.Update):
                for eq in then.expressions:
                    columns.append(assigned_column(eq))
                    values.append(eq.expression)
            elif isinstance(then, exp.Insert) and isinstance(then.this, exp.Tuple):
                names = [column.name for column in then.this.expressions]
                row = then.expression.expressions if isinstance(then.expression, exp.Tuple) else []
                if len(row) != len(names):
                    self.fail(where, f"MERGE INSERT of {len(row)} values into {len(names)} columns")
                    continue
                columns.extend(names)
                values.extend(row)
        self.check_fields_exist(where, full_name, columns)
        select = projecting(values + conditions).from_(merge.this.copy(), copy=False)
        select = select.join(merge.args["using"].copy(), on=merge.args["on"].copy(), copy=False)
        self.check_rewritten(where, full_name, select, columns, "MERGE write")

    def check_rewritten(self, where: str, full_name: str, select: exp.Select, columns: List[str], what: str) -> None:
        """Type `select`, whose first projections are the values written into
        `columns` of `full_name`."""
        if not self.resolve_tables(where, select):
            return
        typed = self.typed(select)
        self.check_comparisons(where, typed)
        self.check_writes(where, full_name, list(zip(columns, typed.selects)), what)

    # -- CREATE, ALTER: only keep the catalog up to date.

    def check_create(self, where: str, create: exp.Create) -> None:
        target = create.this.this if isinstance(create.this, exp.Schema) else create.this
        is_table = create.kind == "TABLE"
        if not isinstance(target, exp.Table) or not (is_table or isinstance(create.expression, exp.Query)):
            return  # CREATE FUNCTION, SCHEMA...: nothing to type
        full_name = self.new_table_name(target)
        columns: Columns = {}
        if isinstance(create.this, exp.Schema):
            columns = {d.name.lower(): d.args["kind"] for d in create.this.expressions if isinstance(d, exp.ColumnDef) and d.args.get("kind")}
        query = create.expression
        if isinstance(query, exp.Query) and self.resolve_tables(where, query):
            typed = self.typed(query)
            self.check_comparisons(where, typed)
            columns = columns or {select.alias_or_name.lower(): select.type for select in typed.selects}
        if is_table and full_name not in self.catalog.tables and columns:
            self.catalog.add(full_name, columns)

    def new_table_name(self, table: exp.Table) -> str:
        parts = table_parts(table)
        full_name, _ = self.catalog.find(parts)
        if full_name:
            return full_name
        if len(parts) == 2:
            parts.insert(0, self.catalog.project_of(parts[0]))
        return ".".join(parts)

    def apply_alter(self, alter: exp.Alter) -> None:
        full_name, _ = self.catalog.find(table_parts(alter.this))
        if full_name is None:
            return
        columns = self.catalog.tables[full_name]
        for action in alter.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef) and action.args.get("kind"):
                columns.setdefault(action.name.lower(), action.args["kind"])


# ---------------------------------------------------------------------------
# Tree helpers


def first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def substitute_parameters(tree: exp.Expression, parameters: Dict[str, exp.Expression], undeclared) -> bool:
    """Replace each `@name` with its typed NULL. sqlglot parses `@name` as a
    Parameter node, so this is done on the tree rather than on the text
    (`'@name'` in a string literal stays as it is). False after calling
    `undeclared(name)` for a parameter the statement does not declare."""
    ok = True
    for node in list(tree.find_all(exp.Parameter)):
        value = parameters.get(node.name.lower())
        if value is None:
            undeclared(node.name)
            ok = False
        else:
            node.replace(value.copy())
    return ok


def set_full_name(table: exp.Table, full_name: str) -> None:
    project, dataset, name = full_name.split(".")
    table.set("catalog", exp.to_identifier(project, quoted=True))
    table.set("db", exp.to_identifier(dataset, quoted=True))
    table.set("this", exp.to_identifier(name, quoted=True))


def assigned_column(eq: exp.Expression) -> str:
    """The column an `col = value` assignment of SET writes."""
    return eq.this.name


def projecting(values: List[exp.Expression]) -> exp.Select:
    """`SELECT value AS _value_0, ...` (or `SELECT TRUE` when empty)."""
    projections = [value.copy().as_(f"_value_{i}") for i, value in enumerate(values)]
    return exp.select(*(projections or [exp.true()]))


def from_items(from_: Optional[exp.From]) -> Iterator[exp.Expression]:
    """The items of an UPDATE's FROM: sqlglot keeps `FROM a, b` as `a` with
    `b` in its "joins"."""
    if from_ is None:
        return
    item = from_.this.copy()
    joins = item.args.pop("joins", None) or []
    yield item
    for join in joins:
        yield join.this


def unnest_element_type(unnest: exp.Unnest) -> Optional[exp.DataType]:
    """The type of the elements of `UNNEST(array)`."""
    if type_class(unnest.type) != "unknown":
        return unnest.type
    array_type = unnest.expressions[0].type if unnest.expressions else None
    if array_type is not None and array_type.this == exp.DataType.Type.ARRAY and array_type.expressions:
        return array_type.expressions[0]
    return None


# ---------------------------------------------------------------------------


def check_log(log: Log) -> Checker:
    checker = Checker(log.catalog)
    for index, statement in enumerate(log.statements):
        checker.check_statement(index, statement)
    for index, insert in enumerate(log.inserts):
        checker.check_insert_all(index, insert)
    return checker


def main(argv: List[str]) -> int:
    if len(argv) != 2:
        print("usage: bq_typecheck.py LOG.json", file=sys.stderr)
        return 2
    try:
        log = read_log(argv[1])
    except LogError as error:
        print(f"bq_typecheck: cannot read {argv[1]}: {error}", file=sys.stderr)
        return 2
    checker = check_log(log)
    counts = f"{len(log.statements)} statements, {len(log.inserts)} inserts checked"
    if checker.errors:
        for error in checker.errors:
            print(error)
        print(f"bq_typecheck: {counts}, {len(checker.errors)} errors ({checker.untyped} untyped comparisons)", file=sys.stderr)
        return 1
    print(f"bq_typecheck: {counts}, no type errors ({checker.untyped} untyped comparisons)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
