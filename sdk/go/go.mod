module weir.local/sdk

go 1.27
