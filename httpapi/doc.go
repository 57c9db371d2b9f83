// Package httpapi is meterd's HTTP surface: the gorilla/mux routes of the
// track, usage, admin and operations endpoints, authentication, JSON
// errors and rate-limit headers.
//
// httpapi holds no state of its own and never touches storage directly:
// every decision and every number comes from the meter (and the read
// models given to it). It must never log or echo an API key or a token.
package httpapi
