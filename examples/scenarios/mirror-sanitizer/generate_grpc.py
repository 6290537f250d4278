# Writes examples/scenarios/mirror-sanitizer/grpc-64k.yaml: a shadow gRPC call
# whose one message is 64 KiB of orders, as protobuf, with the descriptor set.
import base64, struct
def varint(n):
    out = b''
    while n >= 0x80:
        out += bytes([(n & 0x7f) | 0x80]); n >>= 7
    return out + bytes([n])
def key(num, wire): return varint(num << 3 | wire)
def ln(num, b): return key(num, 2) + varint(len(b)) + b
def vi(num, v): return key(num, 0) + varint(v)
def f64(num, x): return key(num, 1) + struct.pack('<d', x)
# descriptor.proto
def field(name, num, typ, type_name=None, repeated=False):
    b = ln(1, name.encode()) + vi(3, num) + vi(4, 3 if repeated else 1) + vi(5, typ)
    return b + (ln(6, type_name.encode()) if type_name else b'')
def message(name, fields):
    return ln(1, name.encode()) + b''.join(ln(2, f) for f in fields)
STRING, MESSAGE, UINT32, DOUBLE = 9, 11, 13, 1
msgs = [
    message('User', [field('user_id', 1, STRING), field('email', 2, STRING), field('password', 3, STRING)]),
    message('Payment', [field('card', 1, STRING), field('amount', 2, DOUBLE)]),
    message('Item', [field('sku', 1, STRING), field('qty', 2, UINT32), field('note', 3, STRING)]),
    message('Order', [field('id', 1, UINT32), field('user', 2, MESSAGE, '.shop.User'), field('payment', 3, MESSAGE, '.shop.Payment'),
                      field('items', 4, MESSAGE, '.shop.Item', True), field('comment', 5, STRING)]),
    message('Batch', [field('orders', 1, MESSAGE, '.shop.Order', True)]),
]
method = ln(1, b'Upload') + ln(2, b'.shop.Batch') + ln(3, b'.shop.Batch')
service = ln(1, b'Orders') + ln(2, method)
fileproto = ln(1, b'shop.proto') + ln(2, b'shop') + b''.join(ln(4, m) for m in msgs) + ln(6, service) + ln(12, b'proto3')
descriptor = base64.b64encode(ln(1, fileproto)).decode()
def order(i):
    user = ln(1, f'u-{1000+i}'.encode()) + ln(2, f'user{i}@example.com'.encode()) + ln(3, b'hunter2')
    pay = ln(1, b'4111 1111 1111 1111') + f64(2, 12.5)
    item = ln(1, f'SKU-{i}'.encode()) + vi(2, 2) + ln(3, b'gift wrap, deliver after 5pm')
    return vi(1, i) + ln(2, user) + ln(3, pay) + ln(4, item) + ln(5, b'Please call me back, my order has not arrived yet and I am worried about it.')
target = 65536 - 5
batch = b''
i = 0
while True:
    o = ln(1, order(i))
    if len(batch) + len(o) > target - 64:
        break
    batch += o; i += 1
pad = target - len(batch)
# The last order's comment pads the message to exactly 64 KiB with its frame.
for n in range(pad, 0, -1):
    o = ln(1, vi(1, i) + ln(5, b'x' * n))
    if len(batch) + len(o) == target:
        batch += o; break
assert len(batch) == target, len(batch)
framed = b'\x00' + struct.pack('>I', len(batch)) + batch
chunks = [framed[k:k + 16384] for k in range(0, len(framed), 16384)]
with open('examples/scenarios/mirror-sanitizer/grpc-64k.yaml', 'w') as out:
    out.write('''# mirror-sanitizer bench: a shadow gRPC call whose one message is 64 KiB of
# orders in protobuf (65,536 bytes with its frame: user ids, e-mail
# addresses, passwords and card numbers, as in body-64k.yaml), sanitized
# field by field with the service's descriptor set (protoDescriptorBin). From
# the repository root, after `make build`:
#   cargo build --release -p harness
#   target/release/harness bench --scenario examples/scenarios/mirror-sanitizer/grpc-64k.yaml --requests N
# Written by generate_grpc.py beside it (python3 examples/scenarios/
# mirror-sanitizer/generate_grpc.py from the root); the message is
# shop.Batch { repeated Order orders }.
wasm: ../../../target/wasm32-wasip1/release/mirror_sanitizer.wasm
plugin:
  rootId: mirror-sanitizer
  env: { MIRROR_SANITIZER_HASH_KEY: bench-hash-key-0123456789 }
  config:
    rules:
      - { name: user-id, fields: [user_id, userId], mode: hash }
      - { name: cards, detectors: [cardNumber], mode: mask, placeholder: "****", keepLast: 4 }
    hashKey: { env: MIRROR_SANITIZER_HASH_KEY }
    protoDescriptorBin: %s
requests:
  - name: a shadow gRPC call with a 64 KiB message
    request:
      method: POST
      path: /shop.Orders/Upload
      headers: { host: "productpage-shadow:9080", content-type: application/grpc, te: trailers }
      http2: true
      # 16 KiB DATA frames.
      chunks:
''' % descriptor)
    for c in chunks:
        out.write('        - { base64: %s }\n' % base64.b64encode(c).decode())
    out.write('''    expect:
      upstreamCalled: true
      metrics: { mirror_sanitizer.shadow.grpc_messages_sanitized: 1 }
''')
print(i, 'orders')
