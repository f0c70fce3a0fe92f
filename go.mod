module github.com/ferry-io/ferry

go 1.26

require (
	github.com/lxzan/gws v1.8.9
	github.com/vmihailenco/msgpack/v5 v5.4.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/dolthub/maphash v0.1.0 // indirect
	github.com/klauspost/compress v1.17.9 // indirect
	github.com/vmihailenco/tagparser/v2 v2.0.0 // indirect
)
