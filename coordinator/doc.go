// Package coordinator defines how the instances of one distributed run
// share work: the Coordinator interface, and the wire types that cross it
// (assignments, result envelopes, member records, cancellation).
//
// Envelope lives here because it is the one record that crosses every
// boundary: plugin to host, worker to master, run to report.
package coordinator
