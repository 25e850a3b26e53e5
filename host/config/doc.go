// Package config loads a modpipe pipeline file (pipeline.hcl) into a
// Pipeline: the host's own blocks and every module's meta-arguments are
// decoded and checked here, while the rest of each module body is kept,
// unevaluated, for the schema its plugin declares.
//
// Decoding follows Terraform: the file is parsed with hclsyntax, the host's
// blocks and meta-arguments are taken with PartialContent, and everything
// that goes wrong becomes an hcl.Diagnostic with a source range. Problems
// are accumulated rather than reported one at a time, so a user sees every
// mistake in the file in one pass.
//
// Module bodies are evaluated later, when the module is about to run,
// against an EvalContext that holds var.*, local.*, run.*, matrix.* and
// the results of the modules it refers to (module.*).
package config
