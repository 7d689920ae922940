import threading


def handler(event, context):
    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()
    return {"echo": event, "request_id": context.aws_request_id}
