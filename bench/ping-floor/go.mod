module berth.local/ping-floor

go 1.22
