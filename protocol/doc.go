// Package protocol implements ferry's wire protocol, version 1: the frame
// type, its JSON and msgpack codecs, conversion of data between the codecs,
// decoding of data into Go values (Unmarshal), and the rules for topics and
// filters. It does no I/O.
//
// Decoders return data as a sub-slice of their input, so that a broker can
// forward a payload to subscribers of the same codec without decoding it.
// All functions are safe for concurrent use; a Frame is not.
package protocol
