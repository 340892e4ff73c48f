from squall.engine import Scenario, batches, closed, jwt_identities, run

scenario = Scenario(
    name="chat",
    behaviour="myload.behaviours:chat",
    workload=closed(4, iterations=2),
    identities=jwt_identities("the-target-secret"),
    params={"url": "ws://127.0.0.1:8000/ws"},
)
result = run(scenario, processes=2, progress=False)
print(result.trend("response_time").p99)
