//! What an expression reads, found without running it: what AWS refuses in it when the
//! definition is created, and what the state must make visible to it when it runs.

use jsonata_core::ast::AstNode;

use super::Compiled;

impl Compiled {
    /// Whether the expression may read `$states.context`: only then must the state build the
    /// context object (which holds a copy of the execution's input) into its `$states`.
    pub fn reads_context(&self) -> bool {
        reads_context(self.ast())
    }

    /// The variables the expression may read (`$name`; `$states` aside): only those need to be
    /// made visible to it. JSONata variables are lexical, so every read is one of these names.
    pub fn variables(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        visit(self.ast(), &mut |node| {
            if let AstNode::Variable(name) = node
                && !name.is_empty()
                && name != "states"
                && !names.contains(name)
            {
                names.push(name.clone());
            }
        });
        names
    }

    /// What Step Functions refuses in this expression when the definition is created, as AWS
    /// words it (UNSUPPORTED_JSONATA_EXPRESSION): a field read at the top level, where there is
    /// no context item (`phone` in `phone.number`, `$count(phone)`, or a function body's
    /// `function($x) { phone }`, which keeps the context of where it is written), once per
    /// name; `$$`; and `$states.errorOutput` outside a catcher's Output and Assign
    /// (`in_catcher`). Names after a path's first step, in a predicate, a sort term or an object
    /// grouping read a value, and are fine.
    pub fn unsupported(&self, in_catcher: bool) -> Vec<String> {
        let mut names = Vec::new();
        top_level_names(self.ast(), &mut names);
        let mut problems: Vec<String> = names
            .iter()
            .map(|n| format!("Reference to '{n}' at the top level is not supported."))
            .collect();
        let (mut root, mut error_output) = (false, false);
        visit(self.ast(), &mut |node| match node {
            AstNode::ParentVariable(_) => root = true,
            AstNode::Path { steps } => {
                error_output |= matches!(
                    (steps.first().map(|s| &s.node), steps.get(1).map(|s| &s.node)),
                    (Some(AstNode::Variable(v)), Some(AstNode::Name(n))) if v == "states" && n == "errorOutput"
                );
            }
            _ => {}
        });
        if root {
            problems.push("Reference to '$$' is not supported.".to_owned());
        }
        if error_output && !in_catcher {
            problems.push("Field '$states.errorOutput' does not exist.".to_owned());
        }
        problems
    }
}

fn top_level_names(node: &AstNode, names: &mut Vec<String>) {
    use AstNode as N;
    let mut add = |name: &str| {
        if !names.iter().any(|n| n == name) {
            names.push(name.to_owned());
        }
    };
    match node {
        N::Name(name) => add(name),
        // Only a path's first step reads the top level; the rest read what it found.
        N::Path { steps } => {
            if let Some(first) = steps.first() {
                top_level_names(&first.node, names);
            }
        }
        N::Binary { lhs, rhs, .. } => {
            top_level_names(lhs, names);
            top_level_names(rhs, names);
        }
        N::Unary { operand, .. } => top_level_names(operand, names),
        N::Function { args, .. } => args.iter().for_each(|a| top_level_names(a, names)),
        N::Call { procedure, args } => {
            top_level_names(procedure, names);
            args.iter().for_each(|a| top_level_names(a, names));
        }
        N::Array(items) | N::Block(items) => items.iter().for_each(|i| top_level_names(i, names)),
        N::Object(pairs) => pairs.iter().for_each(|(k, v)| {
            top_level_names(k, names);
            top_level_names(v, names);
        }),
        N::ObjectTransform { input, .. } => top_level_names(input, names),
        N::Sort { input, .. } => top_level_names(input, names),
        N::Conditional {
            condition,
            then_branch,
            else_branch,
        } => {
            top_level_names(condition, names);
            top_level_names(then_branch, names);
            if let Some(e) = else_branch {
                top_level_names(e, names);
            }
        }
        // A function body keeps the context of the expression that defines it.
        N::Lambda { body, .. } => top_level_names(body, names),
        // Literals, variables and the path-only operators read nothing at the top level.
        _ => {}
    }
}

/// Calls `f` on `node` and every node under it.
fn visit(node: &AstNode, f: &mut impl FnMut(&AstNode)) {
    f(node);
    for child in children(node) {
        visit(child, f);
    }
}

/// The nodes directly under `node` (a path's steps and their predicates included).
fn children(node: &AstNode) -> Vec<&AstNode> {
    use jsonata_core::ast::Stage;
    match node {
        AstNode::Path { steps } => steps
            .iter()
            .flat_map(|step| {
                std::iter::once(&step.node).chain(step.stages.iter().filter_map(|s| match s {
                    Stage::Filter(n) => Some(&**n),
                    _ => None,
                }))
            })
            .collect(),
        AstNode::Binary { lhs, rhs, .. } => vec![lhs, rhs],
        AstNode::Unary { operand, .. } => vec![operand],
        AstNode::Function { args, .. } => args.iter().collect(),
        AstNode::Call { procedure, args } => {
            std::iter::once(&**procedure).chain(args.iter()).collect()
        }
        AstNode::Lambda { body, .. } => vec![body],
        AstNode::Array(items) | AstNode::Block(items) | AstNode::ArrayGroup(items) => {
            items.iter().collect()
        }
        AstNode::Object(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        AstNode::ObjectTransform { input, pattern } => std::iter::once(&**input)
            .chain(pattern.iter().flat_map(|(k, v)| [k, v]))
            .collect(),
        AstNode::Conditional {
            condition,
            then_branch,
            else_branch,
        } => [&**condition, &**then_branch]
            .into_iter()
            .chain(else_branch.as_deref())
            .collect(),
        AstNode::FunctionApplication(inner) => vec![inner],
        AstNode::Sort { input, terms } => std::iter::once(&**input)
            .chain(terms.iter().map(|(t, _)| t))
            .collect(),
        AstNode::Transform {
            location,
            update,
            delete,
        } => [&**location, &**update]
            .into_iter()
            .chain(delete.as_deref())
            .collect(),
        _ => Vec::new(),
    }
}

/// Whether `node` may read `$states.context`: a path through it, or `$states` whole.
fn reads_context(node: &AstNode) -> bool {
    if let AstNode::Path { steps } = node
        && let Some(AstNode::Variable(v)) = steps.first().map(|s| &s.node)
        && v == "states"
    {
        let other_field =
            matches!(steps.get(1).map(|s| &s.node), Some(AstNode::Name(n)) if n != "context");
        // `$states.input...` reads no context, but what follows it (a predicate...) may.
        return !other_field || children(node).into_iter().skip(1).any(reads_context);
    }
    matches!(node, AstNode::Variable(v) if v == "states")
        || children(node).into_iter().any(reads_context)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_expressions_that_may_read_the_context_need_it() {
        let reads = |text: &str| Compiled::compile(text).unwrap().reads_context();
        for yes in [
            "$states.context.Execution.Id",
            "$states",
            "$keys($states)",
            "$states.input.items[id = $states.context.Map.Item.Index]",
            "($s := $states; $s.context)",
        ] {
            assert!(reads(yes), "{yes}");
        }
        for no in [
            "$states.input.a",
            "$count($states.result)",
            "$x + 1",
            "'context'",
        ] {
            assert!(!reads(no), "{no}");
        }
    }

    #[test]
    fn the_variables_an_expression_reads_are_known() {
        let vars = |text: &str| Compiled::compile(text).unwrap().variables();
        assert_eq!(vars("$a + $b.c + $a"), ["a", "b"]);
        assert_eq!(
            vars("$states.input.x & $count($items[$ > $min])"),
            ["items", "min"]
        );
        assert!(vars("$states.input").is_empty());
    }

    #[test]
    fn refusals_name_what_aws_names() {
        let refused =
            |text: &str, in_catcher| Compiled::compile(text).unwrap().unsupported(in_catcher);
        assert_eq!(
            refused("a.b + $count(c) + a", false),
            [
                "Reference to 'a' at the top level is not supported.",
                "Reference to 'c' at the top level is not supported."
            ]
        );
        assert_eq!(
            refused("$$", false),
            ["Reference to '$$' is not supported."]
        );
        assert_eq!(
            refused("$states.errorOutput.Cause", false),
            ["Field '$states.errorOutput' does not exist."]
        );
        assert!(refused("$states.errorOutput.Cause", true).is_empty());
        assert!(refused("$states.input.items[price > 1].name", false).is_empty());
    }
}
