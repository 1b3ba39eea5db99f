//! Prints Medplum's two index expression shapes from the text of their node trees
//! (`pg_node_tree`), exactly as `pg_get_expr` prints them, so that the catalog query need not
//! deparse them on the server (which opens every table that has one).
//!
//! `queries/schema_indexes.sql` decides which trees come here, with tests on their text that
//! leave only these shapes:
//! - a call of a user function on plain columns, `token_array_to_text("__codeText")`;
//! - a boolean column compared with a boolean constant, `(deleted = false)`.
//!
//! A tree that is not what the query promised gives `None`, never a guess.

use std::collections::BTreeMap;

use crate::catalog::ColumnName;

/// `name(column, …)`: the call in `tree` (one `FUNCEXPR` whose arguments are `VAR`s) of the
/// function printed as `function`, its arguments named from `columns` by column number.
pub fn call_on_columns(
    function: &str,
    tree: &str,
    columns: &BTreeMap<i16, ColumnName>,
) -> Option<String> {
    let args = tree.split_once(":args (")?.1;
    let mut printed = Vec::new();
    for node in args.split('{').skip(1) {
        printed.push(column(node, columns)?);
    }
    if printed.is_empty() {
        return None;
    }
    Some(format!("{function}({})", printed.join(", ")))
}

/// `(column = true|false)`: the predicate in `tree` (an `OPEXPR` of boolean `=` on a `VAR` and
/// a non-null boolean `CONST`), the column named from `columns`.
pub fn boolean_equality(tree: &str, columns: &BTreeMap<i16, ColumnName>) -> Option<String> {
    let args = tree.split_once(":args (")?.1;
    let mut nodes = args.split('{').skip(1);
    let (left, right) = (nodes.next()?, nodes.next()?);
    if nodes.next().is_some() {
        return None;
    }
    let name = column(left, columns)?;
    let value = boolean_constant(right)?;
    Some(format!("({name} = {value})"))
}

/// The quoted name of the column a `VAR` node (its text after `{`) refers to.
fn column<'c>(node: &str, columns: &'c BTreeMap<i16, ColumnName>) -> Option<&'c str> {
    let fields = node.strip_prefix("VAR ")?;
    let number: i16 = field(fields, ":varattno ")?.parse().ok()?;
    if number <= 0 {
        return None;
    }
    columns.get(&number).map(|c| c.quoted.as_str())
}

/// `true` or `false`: a non-null boolean `CONST` node (its text after `{`). Its value is
/// printed as the bytes of a `Datum`, `:constvalue 1 [ 0 0 0 0 0 0 0 0 ]`; any byte not zero
/// is true, whatever the machine's byte order.
fn boolean_constant(node: &str) -> Option<&'static str> {
    let fields = node.strip_prefix("CONST ")?;
    if field(fields, ":consttype ")? != "16" || field(fields, ":constisnull ")? != "false" {
        return None;
    }
    let bytes = fields.split_once(":constvalue ")?.1;
    let (_, bytes) = bytes.split_once('[')?;
    let (bytes, _) = bytes.split_once(']')?;
    let mut any = false;
    for byte in bytes.split_whitespace() {
        any |= byte.parse::<i16>().ok()? != 0;
    }
    Some(if any { "true" } else { "false" })
}

/// The value of the field named `name` (with its trailing space) in a node's fields.
fn field<'t>(fields: &'t str, name: &str) -> Option<&'t str> {
    let rest = fields.split_once(name)?.1;
    rest.split([' ', '}']).next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> BTreeMap<i16, ColumnName> {
        [
            (4, "deleted"),
            (11, "\"__codeText\""),
            (12, "\"__tagText\""),
        ]
        .into_iter()
        .map(|(number, quoted)| {
            let name = ColumnName {
                quoted: quoted.to_string(),
                collation: 0,
            };
            (number, name)
        })
        .collect()
    }

    // Node trees as PostgreSQL 15 stores them (16 adds `:varnullingrels (b)` to VAR).
    const CALL: &str = "({FUNCEXPR :funcid 17589 :funcresulttype 25 :funcretset false \
        :funcvariadic false :funcformat 0 :funccollid 100 :inputcollid 100 :args ({VAR :varno 1 \
        :varattno 11 :vartype 1009 :vartypmod -1 :varcollid 100 :varlevelsup 0 :varnosyn 1 \
        :varattnosyn 11 :location 94}) :location 74})";
    const PREDICATE: &str = "{OPEXPR :opno 91 :opfuncid 60 :opresulttype 16 :opretset false \
        :opcollid 0 :inputcollid 0 :args ({VAR :varno 1 :varattno 4 :vartype 16 :vartypmod -1 \
        :varcollid 0 :varnullingrels (b) :varlevelsup 0 :varnosyn 1 :varattnosyn 4 :location 70} \
        {CONST :consttype 16 :consttypmod -1 :constcollid 0 :constlen 1 :constbyval true \
        :constisnull false :location 80 :constvalue 1 [ 0 0 0 0 0 0 0 0 ]}) :location 78}";

    #[test]
    fn prints_a_call_on_columns() {
        let printed = call_on_columns("token_array_to_text", CALL, &columns());
        assert_eq!(
            printed.as_deref(),
            Some("token_array_to_text(\"__codeText\")")
        );
        let two = CALL.replace(
            ":location 94})",
            ":location 94} {VAR :varno 1 :varattno 12 :vartype 1009 :location 99})",
        );
        let printed = call_on_columns("public.f", &two, &columns());
        assert_eq!(
            printed.as_deref(),
            Some("public.f(\"__codeText\", \"__tagText\")")
        );
    }

    #[test]
    fn prints_a_boolean_equality() {
        assert_eq!(
            boolean_equality(PREDICATE, &columns()).as_deref(),
            Some("(deleted = false)")
        );
        let big_endian_true = PREDICATE.replace("[ 0 0 0 0 0 0 0 0 ]", "[ 0 0 0 0 0 0 0 1 ]");
        assert_eq!(
            boolean_equality(&big_endian_true, &columns()).as_deref(),
            Some("(deleted = true)")
        );
    }

    #[test]
    fn refuses_what_it_cannot_print_exactly() {
        let unknown_column = CALL.replace(":varattno 11 ", ":varattno 40 ");
        assert_eq!(call_on_columns("f", &unknown_column, &columns()), None);
        let whole_row = CALL.replace(":varattno 11 ", ":varattno 0 ");
        assert_eq!(call_on_columns("f", &whole_row, &columns()), None);
        let constant_argument = CALL.replace("{VAR ", "{CONST ");
        assert_eq!(call_on_columns("f", &constant_argument, &columns()), None);
        let null_constant =
            PREDICATE.replace(":constisnull false", ":constisnull true :constvalue <>");
        assert_eq!(boolean_equality(&null_constant, &columns()), None);
        let integer_constant = PREDICATE.replace(":consttype 16 ", ":consttype 23 ");
        assert_eq!(boolean_equality(&integer_constant, &columns()), None);
        let swapped = PREDICATE
            .replace("{VAR ", "{X ")
            .replace("{CONST ", "{VAR ");
        assert_eq!(boolean_equality(&swapped, &columns()), None);
    }
}
