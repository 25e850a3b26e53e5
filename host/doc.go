// Package host is modpipe's engine: it loads a pipeline file, starts the
// plugins its modules need, checks every module's configuration against
// the schema its plugin declared, schedules the module graph and runs it,
// and reports the result envelopes.
//
// The pieces live in subpackages: config (the HCL file), graph (the module
// graph), schedule (the one scheduler every mode shares), pluginhost (the
// plugin processes) and report (summaries and report files). This package
// wires them together behind the operations the CLI offers: Run, Validate,
// Graph and Plugins.
package host
