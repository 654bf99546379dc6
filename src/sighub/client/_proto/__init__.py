"""Generated protobuf and gRPC code (``make proto``); private: never in public signatures."""
