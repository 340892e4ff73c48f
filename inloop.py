import asyncio
from squall.engine import Scenario, closed, run
scenario = Scenario(name="chat", behaviour="myload.behaviours:chat", workload=closed(2, iterations=1), params={"url": "ws://127.0.0.1:8000/ws"})
async def main():
    run(scenario)
if __name__ == "__main__":
    asyncio.run(main())
