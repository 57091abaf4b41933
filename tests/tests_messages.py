"""Small message builders shared by tests."""


def simple_message(subject: str, body: str = "Hello.", sender: str = "carol@example.net") -> bytes:
    return (f"From: {sender}\r\nTo: alice@example.org\r\nSubject: {subject}\r\n"
            f"Date: Tue, 8 Feb 2022 10:00:00 +0100\r\n\r\n{body}\r\n").encode()
