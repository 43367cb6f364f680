// Package local holds the adapters of the embedded mode, which needs no outside
// service: one-time pages kept as files in the data folder, email written as .eml
// files to an outbox folder or sent over SMTP, and a workflow that POSTs each
// outcome to the request's webhook URL.
package local
