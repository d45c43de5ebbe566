module weir.local/stage/{{ident}}

go 1.27

require weir.local/sdk v0.0.0

replace weir.local/sdk => {{sdk}}/go
